"""Sending the notification outbox: claim a row, send it through its channel, record the outcome,
retry with backoff, reclaim rows whose worker died.

See the package docstring (scheduling.notifications) for how a message goes out exactly once.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar
from uuid import UUID

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connections
from django.db.models import F, Q
from django.utils import timezone

from clinic import audit, liveness, logs
from clinic.models import AuditOutcome
from scheduling import channels
from scheduling.models import OPEN_SESSION_STATUSES, SeriesStatus, SessionFlag
from scheduling.notifications.models import Notification, NotificationKind, NotificationStatus
from scheduling.notifications.outbox import (
    SEND_TASK,
    reminder_subject,
    skip_reason,
    staff_skip_reason,
)
from scheduling.notifications.texts import compose

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Outcomes of `send`.
SENT = "sent"
RETRY = "retry"
FAILED = "failed"
SKIPPED = "skipped"
NOT_CLAIMED = "not_claimed"
MISSING = "missing"


def send(notification_id: UUID) -> str:
    """Claim one row, send it through its channel and record the outcome.

    Runs outside any transaction (a task): the claim commits before the message leaves, and
    `sent` commits in one statement right after the channel accepted it. See the module
    docstring for the one duplicate this cannot exclude.
    """
    claimed_at = timezone.now()
    claimed = Notification.objects.filter(
        pk=notification_id, status=NotificationStatus.PENDING, scheduled_for__lte=claimed_at
    ).update(
        status=NotificationStatus.SENDING,
        claimed_at=claimed_at,
        claimed_by=liveness.identity(),
        attempts=F("attempts") + 1,
    )
    if not claimed:
        # Sent, claimed by another worker, not yet due, or gone.
        if Notification.objects.filter(pk=notification_id).exists():
            return NOT_CLAIMED
        return MISSING
    notification = Notification.objects.select_related(
        "clinic", "patient", "staff", "session", "session__series"
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
        failure = exc  # bound for the closure: `exc` is unbound once the except block ends
        outcome = _record_outcome(lambda: _record_failure(notification, claimed_at, failure))
        if isinstance(exc, SoftTimeLimitExceeded):
            raise
        return outcome
    # Any status but sent: a reclaimed row that this (slow) worker did deliver is sent, truly.
    _record_outcome(
        lambda: (
            Notification.objects.filter(pk=notification.pk)
            .exclude(status=NotificationStatus.SENT)
            .update(status=NotificationStatus.SENT, sent_at=timezone.now(), last_error="")
        )
    )
    _record_outcome(lambda: _audit_send(notification, AuditOutcome.SUCCESS))
    return SENT


def _record_outcome(write: Callable[[], T]) -> T:
    """Record how a send went, even through a database outage.

    Once the channel has the message, failing to say so would leave the row `sending` until a
    scan reclaims it and sends it again (and a failed try would wait out the claim timeout). So
    the write is retried, on a fresh connection each time, for up to
    NOTIFICATION_RECORD_RETRY_SECONDS before the task gives up."""
    deadline = time.monotonic() + settings.NOTIFICATION_RECORD_RETRY_SECONDS
    delay = 0.5
    while True:
        try:
            return write()
        except (OperationalError, InterfaceError) as error:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("recording a send's outcome failed (%s): retrying", error)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            close_old_connections()
            connections["default"].close()


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
    # The exception names the transport's problem; message text is never part of it, but the
    # provider's text may quote the address: kept and shown to staff, it is redacted like a
    # log line (clinic.logs).
    error = logs.redact(f"{type(exc).__name__}: {exc}")[:300]
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
    if notification.staff is not None:
        return staff_skip_reason(notification.staff)
    if notification.patient is None:  # cannot be: one recipient is a check constraint
        return "no recipient"
    opted_out = skip_reason(notification.patient, notification.channel)
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
    """Put back rows whose sender died mid-send: claimed longer ago than the timeout, or by a
    worker process whose heartbeat has lapsed (clinic/liveness.py) a little while ago.

    The row may or may not have gone out (see the module docstring); sending it again, with the
    same provider-side reference (email Message-ID, SMS reference), is the one repeat accepted.
    A row out of attempts ends `failed`.
    """
    now = timezone.now()
    sending = Notification.objects.filter(status=NotificationStatus.SENDING)
    timed_out = Q(
        claimed_at__lt=now - timedelta(seconds=settings.NOTIFICATION_CLAIM_TIMEOUT_SECONDS)
    )
    claimers = (
        sending.filter(claimed_at__lt=now - timedelta(seconds=settings.WORKER_DEAD_AFTER_SECONDS))
        .exclude(claimed_by="")
        .values_list("claimed_by", flat=True)
        .distinct()
    )
    gone = liveness.dead(claimers)
    stuck = sending.filter(
        timed_out
        | Q(
            claimed_by__in=gone,
            claimed_at__lt=now - timedelta(seconds=settings.WORKER_DEAD_AFTER_SECONDS),
        )
    )
    limit = settings.NOTIFICATION_MAX_ATTEMPTS
    failed = stuck.filter(attempts__gte=limit).update(
        status=NotificationStatus.FAILED, last_error="sender lost mid-send, out of attempts"
    )
    back = stuck.filter(attempts__lt=limit).update(
        status=NotificationStatus.PENDING, last_error="sender lost mid-send; reclaimed"
    )
    if failed or back:
        logger.warning(
            "reclaimed %s stuck notification(s), %s out of attempts (dead workers: %s)",
            back,
            failed,
            ", ".join(sorted(gone)) or "none",
        )
    return failed + back
