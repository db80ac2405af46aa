"""The notification outbox's services: queue, claim, send, retry, reclaim, and the scans.

Exactly once, as far as it can be had:

- Creating: a message exists as an outbox row before anything is sent, inserted with
  ON CONFLICT DO NOTHING on the unique key (kind, subject, channel, patient). However many
  scans, requests or retries decide a message is due, one row results.
- Sending: a worker claims a row with a conditional UPDATE (pending and due -> sending) and
  sends only when that UPDATE changed the row; of two workers (or one task delivered twice)
  exactly one sends. It then records `sent` in its own short statement, right after the channel
  accepted the message.
- Nothing depends on Redis keeping a message: tasks are published after commit, a publish that
  fails is only logged, and the beat scan sends every due row from the database state and
  reclaims rows whose worker died mid-send.

The one duplicate that cannot be ruled out: a worker that dies after the provider accepted the
message and before its UPDATE to `sent` commits leaves the row `sending`; it is reclaimed after
NOTIFICATION_CLAIM_TIMEOUT_SECONDS and sent once more. At most one repeat per such death, only
for the row that worker was sending at that moment. Each message carries the row's id as its
reference (SMS) or Message-ID (email), so a provider or mail system that deduplicates on it
closes even that window.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, DurationField, ExpressionWrapper, F, OuterRef, Q, Subquery
from django.utils import timezone

from clinic import audit
from clinic.celery import app as celery_app
from clinic.models import AuditOutcome
from patients.models import Patient
from scheduling import channels, services
from scheduling.models import (
    ACTIVE_SESSION_STATUSES,
    OPEN_SESSION_STATUSES,
    Series,
    SeriesStatus,
    Session,
    SessionFlag,
    SessionStatus,
)
from scheduling.outbox import Channel, Notification, NotificationKind, NotificationStatus

logger = logging.getLogger(__name__)

SEND_TASK = "scheduling.send_notification"
SEND_DUE_TASK = "scheduling.send_due_notifications"

# Outcomes of `send`.
SENT = "sent"
RETRY = "retry"
FAILED = "failed"
SKIPPED = "skipped"
NOT_CLAIMED = "not_claimed"
MISSING = "missing"

# Messages that are not tied to an appointment time go out in the clinic's daytime.
DAYTIME_START = time(9)
DAYTIME_END = time(20)
CHECKIN_TIME = time(10)
# An aftercare check-in more than a day late is no longer worth sending.
AFTERCARE_LOOKBACK = timedelta(days=2)
FLAG_REFRESH_CHUNK = 200
# pg advisory lock key of the scan ("scan" in ASCII): a second beat skips the creating part.
SCAN_LOCK_KEY = 0x7363616E


# --- Queueing ---------------------------------------------------------------------------------


def queue(
    *,
    kind: str,
    patient: Patient,
    subject_key: str,
    session: Session | None = None,
    scheduled_for: datetime | None = None,
) -> list[Notification]:
    """Put one message per channel in the outbox, unless it is there already; return new rows.

    A channel the patient has not opted into, or has no address for, is stored `skipped`.
    After commit the send task is published for rows already due; when publishing fails
    (Redis down) the caller still succeeds and the scan sends the rows later.
    """
    rows = _insert(
        kind=kind,
        patient=patient,
        subject_key=subject_key,
        session=session,
        scheduled_for=scheduled_for,
    )
    now = timezone.now()
    due = [
        row.pk
        for row in rows
        if row.status == NotificationStatus.PENDING and row.scheduled_for <= now
    ]
    if due:
        transaction.on_commit(lambda: publish(due))
    return rows


def _insert(
    *,
    kind: str,
    patient: Patient,
    subject_key: str,
    session: Session | None,
    scheduled_for: datetime | None,
) -> list[Notification]:
    when = scheduled_for or timezone.now()
    rows = [
        Notification(
            clinic_id=patient.clinic_id,
            patient=patient,
            session=session,
            kind=kind,
            subject_key=subject_key,
            channel=channel,
            scheduled_for=when,
            status=NotificationStatus.SKIPPED if reason else NotificationStatus.PENDING,
            last_error=reason or "",
        )
        for channel in Channel.values
        for reason in [_skip_reason(patient, channel)]
    ]
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    # The ids were made here: those found now are the rows this call inserted.
    return list(Notification.objects.filter(pk__in=[row.pk for row in rows]).order_by("channel"))


def _skip_reason(patient: Patient, channel: str) -> str | None:
    if channel == Channel.EMAIL:
        opted_in, address = patient.email_opt_in, patient.email
    else:
        opted_in, address = patient.sms_opt_in, patient.phone
    if not opted_in:
        return f"not opted in to {channel}"
    if not address:
        return f"no {channel} address"
    return None


def publish(notification_ids: Iterable[UUID]) -> int:
    """Publish the send task for each row; never raises. Returns how many were published."""
    calls = [(SEND_TASK, {"notification_id": str(pk)}) for pk in notification_ids]
    published = publish_tasks(calls)
    if published < len(calls):
        logger.warning(
            "could not publish %s of %s notification task(s); the scan will send them",
            len(calls) - published,
            len(calls),
        )
    return published


def publish_tasks(calls: list[tuple[str, dict[str, Any]]]) -> int:
    """Publish (task name, kwargs) pairs on one broker connection; never raises.

    Reads the broker settings at call time and gives up at the first refusal, without the
    usual reconnect retries: a request must not wait for Redis, and the scan finds any row
    whose task was not published. Returns how many were published.
    """
    published = 0
    try:
        with celery_app.connection_for_write(
            settings.CELERY_BROKER_URL,
            connect_timeout=2,
            transport_options={**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "max_retries": 0},
        ) as broker:
            for name, kwargs in calls:
                celery_app.send_task(name, kwargs=kwargs, connection=broker)
                published += 1
    except Exception:
        logger.warning("publishing to the broker failed", exc_info=True)
    return published


# --- Sending ----------------------------------------------------------------------------------


def send(notification_id: UUID) -> str:
    """Claim one row, send it through its channel and record the outcome.

    Runs outside any transaction (a task): the claim commits before the message leaves, and
    `sent` commits in one statement right after the channel accepted it. See the module
    docstring for the one duplicate this cannot exclude.
    """
    claimed_at = timezone.now()
    claimed = Notification.objects.filter(
        pk=notification_id, status=NotificationStatus.PENDING, scheduled_for__lte=claimed_at
    ).update(status=NotificationStatus.SENDING, claimed_at=claimed_at, attempts=F("attempts") + 1)
    if not claimed:
        # Sent, claimed by another worker, not yet due, or gone.
        if Notification.objects.filter(pk=notification_id).exists():
            return NOT_CLAIMED
        return MISSING
    notification = Notification.objects.select_related(
        "clinic", "patient", "session", "session__series"
    ).get(pk=notification_id)
    stale = _no_longer_wanted(notification, claimed_at)
    if stale:
        Notification.objects.filter(
            pk=notification.pk, status=NotificationStatus.SENDING, claimed_at=claimed_at
        ).update(status=NotificationStatus.SKIPPED, last_error=stale)
        return SKIPPED
    try:
        channels.deliver(notification.channel, compose(notification))
    except Exception as exc:
        outcome = _record_failure(notification, claimed_at, exc)
        if isinstance(exc, SoftTimeLimitExceeded):
            raise
        return outcome
    # Any status but sent: a reclaimed row that this (slow) worker did deliver is sent, truly.
    Notification.objects.filter(pk=notification.pk).exclude(status=NotificationStatus.SENT).update(
        status=NotificationStatus.SENT, sent_at=timezone.now(), last_error=""
    )
    _audit_send(notification, AuditOutcome.SUCCESS)
    return SENT


def _audit_send(notification: Notification, outcome: str) -> None:
    # After the row's status, never inside the window between handover and `sent`.
    audit.record(
        actor=None,
        actor_label=SEND_TASK,
        clinic_id=notification.clinic_id,
        action="notification.send",
        object_type="notification",
        object_id=notification.pk,
        patient_id=notification.patient_id,
        outcome=outcome,
        detail={"kind": notification.kind, "channel": notification.channel},
    )


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff after the `attempts`-th failed try: base, 2x base, 4x base..."""
    seconds = settings.NOTIFICATION_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.NOTIFICATION_RETRY_MAX_SECONDS))


def _record_failure(notification: Notification, claimed_at: datetime, exc: Exception) -> str:
    # The exception names the transport's problem; message text is never part of it.
    error = f"{type(exc).__name__}: {exc}"[:300]
    attempts = notification.attempts
    give_up = (
        isinstance(exc, channels.PermanentSendError)
        or attempts >= settings.NOTIFICATION_MAX_ATTEMPTS
    )
    mine = Notification.objects.filter(
        pk=notification.pk, status=NotificationStatus.SENDING, claimed_at=claimed_at
    )
    if give_up:
        mine.update(status=NotificationStatus.FAILED, last_error=error)
        _audit_send(notification, AuditOutcome.FAILED)
        logger.error(
            "notification %s failed for good after %s attempt(s)", notification.pk, attempts
        )
        return FAILED
    mine.update(
        status=NotificationStatus.PENDING,
        scheduled_for=timezone.now() + retry_delay(attempts),
        last_error=error,
    )
    logger.warning("notification %s attempt %s failed: %s", notification.pk, attempts, error)
    return RETRY


def _no_longer_wanted(notification: Notification, now: datetime) -> str | None:
    """Why a row should not go out any more (the patient or the appointment changed), if so."""
    opted_out = _skip_reason(notification.patient, notification.channel)
    if opted_out:
        return opted_out
    kind = notification.kind
    if kind == NotificationKind.LOT_RECALL:
        return None
    if notification.patient.is_archived:
        return "patient archived"
    session = notification.session
    if kind == NotificationKind.SESSION_REMINDER:
        if session is None or session.status not in OPEN_SESSION_STATUSES:
            return "session no longer booked"
        if notification.subject_key != reminder_subject(session):
            return "session moved"
        if session.starts_at <= now:
            return "session already started"
    elif kind == NotificationKind.SCREENING_EXPIRING:
        if session is None or session.status not in OPEN_SESSION_STATUSES:
            return "session no longer booked"
        if SessionFlag.SCREENING_EXPIRED not in session.flags:
            return "screening renewed"
    elif kind == NotificationKind.NEXT_SESSION_DUE and session is not None:
        series = session.series
        if (
            series.status != SeriesStatus.ACTIVE
            or series.sessions.filter(status__in=OPEN_SESSION_STATUSES).exists()
        ):
            return "next session booked"
    return None


# --- Message text -----------------------------------------------------------------------------


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    return timezone.localtime(moment, zone)


def _day_text(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B %Y}"


def _moment_text(moment: datetime) -> str:
    return f"{_day_text(moment.date())} at {moment:%H:%M} {moment:%Z}"


def compose(notification: Notification) -> channels.Message:
    """Subject and body: the clinic's name and local dates and times, never clinical detail."""
    clinic = notification.clinic.name
    zone = notification.clinic.zone
    session = notification.session
    kind = notification.kind
    if kind == NotificationKind.SESSION_REMINDER and session is not None:
        when = _moment_text(_local(session.starts_at, zone))
        subject = f"Reminder: your appointment at {clinic} on {when}"
        text = f"This is a reminder of your appointment at {clinic} on {when}."
        sms = f"{clinic}: reminder of your appointment on {when}."
        closing = "If you need to change it, please contact the clinic."
    elif kind == NotificationKind.SCREENING_EXPIRING and session is not None:
        when = _moment_text(_local(session.starts_at, zone))
        subject = f"Before your appointment at {clinic} on {when}"
        text = (
            f"Before your appointment at {clinic} on {when}, we need to update your "
            "pre-appointment questionnaire with you."
        )
        sms = f"{clinic}: before your appointment on {when} we need to update your questionnaire."
        closing = "Please contact the clinic to arrange it."
    elif kind == NotificationKind.NEXT_SESSION_DUE and session is not None:
        due = _day_text(next_due_after(session, zone))
        subject = f"Time to book your next appointment at {clinic}"
        text = f"Your next appointment at {clinic} is due from {due}."
        sms = f"{clinic}: your next appointment is due from {due}."
        closing = "Please contact the clinic to book it."
    elif kind == NotificationKind.AFTERCARE_CHECKIN and session is not None:
        visited = _day_text(_local(session.completed_at or session.starts_at, zone).date())
        subject = f"Following up on your visit to {clinic}"
        text = f"Thank you for your visit to {clinic} on {visited}. We hope all is well."
        sms = f"{clinic}: thank you for your visit on {visited}. We hope all is well."
        closing = "If you have any questions, please contact the clinic."
    else:
        sent_on = _day_text(_local(timezone.now(), zone).date())
        subject = f"Please contact {clinic}"
        text = f"{clinic} would like to speak with you about a recent visit ({sent_on})."
        sms = f"{clinic}: we would like to speak with you about a recent visit."
        closing = "Please contact the clinic."
    patient = notification.patient
    if notification.channel == Channel.SMS:
        return channels.Message(
            to=patient.phone, subject="", body=f"{sms} {closing}", reference=str(notification.pk)
        )
    body = f"Hello {patient.first_name},\n\n{text}\n\n{closing}\n\n{clinic}\n"
    return channels.Message(
        to=patient.email, subject=subject, body=body, reference=str(notification.pk)
    )


# --- Batch sending and reclaiming -------------------------------------------------------------


def send_due(*, limit: int | None = None) -> Counter[str]:
    """Send due pending rows, oldest first, at most `limit`; count the outcomes."""
    limit = limit or settings.NOTIFICATION_SEND_BATCH
    ids = list(
        Notification.objects.filter(
            status=NotificationStatus.PENDING, scheduled_for__lte=timezone.now()
        )
        .order_by("scheduled_for", "id")
        .values_list("id", flat=True)[:limit]
    )
    return Counter(send(notification_id) for notification_id in ids)


def reclaim_stuck() -> int:
    """Put back rows whose sender died mid-send (claimed longer ago than the timeout).

    The row may or may not have gone out (see the module docstring); sending it again is
    the one repeat accepted. A row out of attempts ends `failed`.
    """
    now = timezone.now()
    stuck = Notification.objects.filter(
        status=NotificationStatus.SENDING,
        claimed_at__lt=now - timedelta(seconds=settings.NOTIFICATION_CLAIM_TIMEOUT_SECONDS),
    )
    limit = settings.NOTIFICATION_MAX_ATTEMPTS
    failed = stuck.filter(attempts__gte=limit).update(
        status=NotificationStatus.FAILED, last_error="sender lost mid-send, out of attempts"
    )
    back = stuck.filter(attempts__lt=limit).update(
        status=NotificationStatus.PENDING, last_error="sender lost mid-send; reclaimed"
    )
    if failed or back:
        logger.warning("reclaimed %s stuck notification(s), %s out of attempts", back, failed)
    return failed + back


# --- The scan ---------------------------------------------------------------------------------


@contextmanager
def _scan_lock() -> Iterator[bool]:
    """A session-level pg advisory lock: one scan creates at a time, others skip that part."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [SCAN_LOCK_KEY])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [SCAN_LOCK_KEY])


def scan() -> dict[str, int]:
    """Everything the beat does, from the database state alone.

    Creates the due notifications and refreshes session flags (one scan at a time; a second
    beat skips this part, and would be harmless anyway: the outbox key and the conditional
    UPDATEs decide), then reclaims stuck rows and sends what is due.
    """
    result: dict[str, int] = {}
    with _scan_lock() as acquired:
        if acquired:
            now = timezone.now()
            result[NotificationKind.SESSION_REMINDER.value] = queue_session_reminders(now)
            result[NotificationKind.NEXT_SESSION_DUE.value] = queue_next_session_due(now)
            result[NotificationKind.AFTERCARE_CHECKIN.value] = queue_aftercare_checkins(now)
            result["flags_changed"] = refresh_open_session_flags(now)
            result[NotificationKind.SCREENING_EXPIRING.value] = queue_screening_expiring(now)
    result["reclaimed"] = reclaim_stuck()
    outcomes = send_due()
    result.update({f"send_{outcome}": count for outcome, count in outcomes.items()})
    if outcomes.total() >= settings.NOTIFICATION_SEND_BATCH:
        publish_tasks([(SEND_DUE_TASK, {})])  # the rest, in a fresh task
    return result


def _queue_missing(kind: str, wanted: Sequence[tuple[str, Session, datetime]]) -> int:
    """Queue (subject, session, when) items of one kind whose rows do not exist yet."""
    if not wanted:
        return 0
    existing = set(
        Notification.objects.filter(
            kind=kind, subject_key__in=[subject for subject, _, _ in wanted]
        ).values_list("subject_key", flat=True)
    )
    created = 0
    for subject, session, when in wanted:
        if subject in existing:
            continue
        created += len(
            _insert(
                kind=kind,
                patient=session.patient,
                subject_key=subject,
                session=session,
                scheduled_for=when,
            )
        )
    return created


def reminder_subject(session: Session) -> str:
    """A reminder is for a session at a time: a session moved later gets a reminder again."""
    return f"{session.pk}@{session.starts_at.astimezone(ZoneInfo('UTC')).isoformat()}"


def queue_session_reminders(now: datetime) -> int:
    """`reminder_lead_hours` elapsed hours before each booked session (DST cannot move it)."""
    lead = ExpressionWrapper(
        F("clinic__reminder_lead_hours") * timedelta(hours=1), output_field=DurationField()
    )
    sessions = list(
        Session.objects.filter(
            status__in=OPEN_SESSION_STATUSES, starts_at__gt=now, patient__archived_at__isnull=True
        )
        .annotate(remind_at=F("starts_at") - lead)
        .filter(remind_at__lte=now)
        .select_related("patient")
    )
    wanted = [(reminder_subject(s), s, s.remind_at) for s in sessions]
    return _queue_missing(NotificationKind.SESSION_REMINDER, wanted)


def next_due_after(session: Session, zone: ZoneInfo) -> date:
    """The day the series' next session is due, one interval after this treated session."""
    treated = _local(session.completed_at or session.starts_at, zone).date()
    return treated + timedelta(days=session.series.interval_days)


def _daytime(moment: datetime, zone: ZoneInfo) -> datetime:
    """The first instant at or after `moment` inside the clinic's daytime hours."""
    local = _local(moment, zone)
    if local.time() < DAYTIME_START:
        return datetime.combine(local.date(), DAYTIME_START, zone)
    if local.time() >= DAYTIME_END:
        return datetime.combine(local.date() + timedelta(days=1), DAYTIME_START, zone)
    return moment


def _checkin_time(day: date, zone: ZoneInfo, now: datetime) -> datetime:
    """10:00 local on `day`, or the next daytime moment when that has passed already."""
    planned = datetime.combine(day, CHECKIN_TIME, zone)
    return planned if planned >= now else _daytime(now, zone)


def queue_next_session_due(now: datetime) -> int:
    """Active series with a treated session, nothing booked, places left, and the interval
    after the last treatment passed: one nudge per such gap (keyed by that treatment)."""
    treated = Session.objects.filter(series_id=OuterRef("pk"), status=SessionStatus.COMPLETED)
    treated = treated.order_by(F("completed_at").desc(nulls_last=True), "-starts_at", "-id")
    series = (
        Series.objects.filter(status=SeriesStatus.ACTIVE, patient__archived_at__isnull=True)
        .annotate(
            open_sessions=Count("sessions", filter=Q(sessions__status__in=OPEN_SESSION_STATUSES)),
            active_sessions=Count(
                "sessions", filter=Q(sessions__status__in=ACTIVE_SESSION_STATUSES)
            ),
            last_treated_id=Subquery(treated.values("id")[:1]),
        )
        .filter(open_sessions=0, active_sessions__lt=F("planned_sessions"))
        .exclude(last_treated_id=None)
    )
    series_by_id = {s.pk: s for s in series}
    last_sessions = Session.objects.filter(
        pk__in=[s.last_treated_id for s in series_by_id.values()]
    ).select_related("clinic", "patient")
    wanted = []
    for session in last_sessions:
        session.series = series_by_id[session.series_id]
        zone = session.clinic.zone
        due_on = next_due_after(session, zone)
        if due_on <= _local(now, zone).date():
            subject = f"series:{session.series_id}:after:{session.pk}"
            wanted.append((subject, session, _checkin_time(due_on, zone, now)))
    return _queue_missing(NotificationKind.NEXT_SESSION_DUE, wanted)


def queue_aftercare_checkins(now: datetime) -> int:
    """The day after each treatment, 10:00 in the clinic's zone."""
    sessions = list(
        Session.objects.filter(
            status=SessionStatus.COMPLETED,
            completed_at__gte=now - AFTERCARE_LOOKBACK,
            patient__archived_at__isnull=True,
        ).select_related("clinic", "patient")
    )
    wanted = []
    for session in sessions:
        zone = session.clinic.zone
        treated = session.completed_at or session.starts_at
        day_after = _local(treated, zone).date() + timedelta(days=1)
        wanted.append((str(session.pk), session, _checkin_time(day_after, zone, now)))
    return _queue_missing(NotificationKind.AFTERCARE_CHECKIN, wanted)


def refresh_open_session_flags(now: datetime) -> int:
    """Recompute the flags of every session still to come (scheduling.services.refresh_flags),
    a chunk per transaction so no booking waits long on the row locks."""
    ids = list(
        Session.objects.filter(
            status__in=OPEN_SESSION_STATUSES,
            series__status=SeriesStatus.ACTIVE,
            starts_at__gt=now,
        )
        .order_by("id")
        .values_list("id", flat=True)
    )
    changed = 0
    for start in range(0, len(ids), FLAG_REFRESH_CHUNK):
        changed += len(services.refresh_flags(session_ids=ids[start : start + FLAG_REFRESH_CHUNK]))
    return changed


def queue_screening_expiring(now: datetime) -> int:
    """Once per session flagged `screening_expired`: come in to re-screen before it."""
    sessions = list(
        Session.objects.filter(
            status__in=OPEN_SESSION_STATUSES,
            starts_at__gt=now,
            flags__contains=[SessionFlag.SCREENING_EXPIRED],
            patient__archived_at__isnull=True,
        ).select_related("clinic", "patient")
    )
    wanted = [(f"session:{s.pk}", s, _daytime(now, s.clinic.zone)) for s in sessions]
    return _queue_missing(NotificationKind.SCREENING_EXPIRING, wanted)
