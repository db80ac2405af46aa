"""The beat's scan: from the database state alone, decide which notifications are due, queue
them, refresh session flags, reclaim stuck rows and send what is due."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count, DurationField, ExpressionWrapper, F, OuterRef, Q, Subquery
from django.utils import timezone

from clinic import liveness
from clinic.models import Clinic
from scheduling import flags
from scheduling.models import (
    ACTIVE_SESSION_STATUSES,
    OPEN_SESSION_STATUSES,
    Series,
    SeriesStatus,
    Session,
    SessionFlag,
    SessionStatus,
)
from scheduling.notifications.models import Notification, NotificationKind, ScanLease
from scheduling.notifications.outbox import SEND_DUE_TASK, insert, publish_tasks, reminder_subject
from scheduling.notifications.sender import reclaim_stuck, send_due
from scheduling.notifications.texts import next_due_after

logger = logging.getLogger(__name__)

# Messages that are not tied to an appointment time go out in the clinic's daytime.
DAYTIME_START = time(9)
DAYTIME_END = time(20)
CHECKIN_TIME = time(10)
# An aftercare check-in more than a day late is no longer worth sending.
AFTERCARE_LOOKBACK = timedelta(days=2)
FLAG_REFRESH_CHUNK = 200
SCAN_LEASE = "notification_scan"


@contextmanager
def _scan_lease() -> Iterator[bool]:
    """The lease on the scan's creating part: one scan creates at a time, others skip it.

    Taken by one statement (a row inserted, or a lapsed one taken over) and given back by
    another, each its own transaction: nothing is held on a connection between them, so it
    works behind PgBouncer in transaction mode, and a scan that dies holding it is relieved
    once `held_until` has passed (NOTIFICATION_SCAN_LEASE_SECONDS).
    """
    # The unique part first: a long host name is what the column's 64 characters cut.
    holder = f"{uuid.uuid4()}/{liveness.identity() or 'scan'}"[:64]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO scheduling_scanlease AS lease (name, holder, held_until)"
            " VALUES (%s, %s, statement_timestamp() + make_interval(secs => %s))"
            " ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder,"
            " held_until = EXCLUDED.held_until"
            " WHERE lease.held_until <= statement_timestamp()"
            " RETURNING holder",
            [SCAN_LEASE, holder, settings.NOTIFICATION_SCAN_LEASE_SECONDS],
        )
        acquired = cursor.fetchone() is not None
    try:
        yield acquired
    finally:
        if acquired:
            try:
                ScanLease.objects.filter(name=SCAN_LEASE, holder=holder).delete()
            except DatabaseError:
                # The database went away (the scan's own error, if any, is the one raised):
                # the lease lapses at held_until.
                logger.warning("could not give back the scan lease; it lapses by itself")


def scan() -> dict[str, int]:
    """Everything the beat does, from the database state alone.

    Creates the due notifications and refreshes session flags (one scan at a time; a second
    beat skips this part, and would be harmless anyway: the outbox key and the conditional
    UPDATEs decide), then reclaims stuck rows and sends what is due.
    """
    result: dict[str, int] = {}
    with _scan_lease() as acquired:
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
            insert(
                kind=kind,
                patient=session.patient,
                subject_key=subject,
                session=session,
                scheduled_for=when,
            )
        )
    return created


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


def _daytime(moment: datetime, clinic: Clinic) -> datetime:
    """The first instant at or after `moment` inside the clinic's daytime hours."""
    zone, local = clinic.zone, clinic.localtime(moment)
    if local.time() < DAYTIME_START:
        return datetime.combine(local.date(), DAYTIME_START, zone)
    if local.time() >= DAYTIME_END:
        return datetime.combine(local.date() + timedelta(days=1), DAYTIME_START, zone)
    return moment


def _checkin_time(day: date, clinic: Clinic, now: datetime) -> datetime:
    """10:00 local on `day`, or the next daytime moment when that has passed already."""
    planned = datetime.combine(day, CHECKIN_TIME, clinic.zone)
    return planned if planned >= now else _daytime(now, clinic)


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
        due_on = next_due_after(session)
        if due_on <= session.clinic.local_date(now):
            subject = f"series:{session.series_id}:after:{session.pk}"
            wanted.append((subject, session, _checkin_time(due_on, session.clinic, now)))
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
        treated = session.completed_at or session.starts_at
        day_after = session.clinic.local_date(treated) + timedelta(days=1)
        wanted.append((str(session.pk), session, _checkin_time(day_after, session.clinic, now)))
    return _queue_missing(NotificationKind.AFTERCARE_CHECKIN, wanted)


def refresh_open_session_flags(now: datetime) -> int:
    """Recompute the flags of every session still to come (scheduling.flags.refresh_flags),
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
        changed += len(flags.refresh_flags(session_ids=ids[start : start + FLAG_REFRESH_CHUNK]))
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
    wanted = [(f"session:{s.pk}", s, _daytime(now, s.clinic)) for s in sessions]
    return _queue_missing(NotificationKind.SCREENING_EXPIRING, wanted)
