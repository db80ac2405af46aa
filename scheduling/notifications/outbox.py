"""Putting messages in the notification outbox, and publishing their send tasks after commit.

See the package docstring (scheduling.notifications) for how a message goes out exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from clinic.celery import app as celery_app
from clinic.models import User
from patients.models import Patient
from scheduling.models import Session
from scheduling.notifications.models import Channel, Notification, NotificationStatus

logger = logging.getLogger(__name__)

SEND_TASK = "scheduling.send_notification"
SEND_DUE_TASK = "scheduling.send_due_notifications"


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
    rows = insert(
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


def insert(
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
        for reason in [skip_reason(patient, channel)]
    ]
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    # The ids were made here: those found now are the rows this call inserted.
    return list(Notification.objects.filter(pk__in=[row.pk for row in rows]).order_by("channel"))


def queue_to_staff(*, kind: str, staff: User, subject_key: str) -> list[Notification]:
    """Put one email to a staff member in the outbox, unless it is there already; return the
    new row (none when it existed). Staff are told by email only; without an address (or no
    longer active) the row is stored `skipped`. Published after commit like `queue`."""
    reason = staff_skip_reason(staff)
    row = Notification(
        clinic_id=staff.clinic_uuid,
        staff=staff,
        kind=kind,
        subject_key=subject_key,
        channel=Channel.EMAIL,
        scheduled_for=timezone.now(),
        status=NotificationStatus.SKIPPED if reason else NotificationStatus.PENDING,
        last_error=reason or "",
    )
    Notification.objects.bulk_create([row], ignore_conflicts=True)
    rows = list(Notification.objects.filter(pk=row.pk))
    due = [r.pk for r in rows if r.status == NotificationStatus.PENDING]
    if due:
        transaction.on_commit(lambda: publish(due))
    return rows


def staff_skip_reason(staff: User) -> str | None:
    if not staff.is_active:
        return "staff member inactive"
    if not staff.email:
        return "no email address"
    return None


def skip_reason(patient: Patient, channel: str) -> str | None:
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


def publish_tasks(
    calls: list[tuple[str, dict[str, Any]]], *, countdown: float | None = None
) -> int:
    """Publish (task name, kwargs) pairs on one broker connection; never raises.

    `countdown`: each task runs no sooner than this many seconds from now (a retry's backoff).

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
                celery_app.send_task(name, kwargs=kwargs, connection=broker, countdown=countdown)
                published += 1
    except Exception:
        logger.warning("publishing to the broker failed", exc_info=True)
    return published


def reminder_subject(session: Session) -> str:
    """A reminder is for a session at a time: a session moved later gets a reminder again."""
    return f"{session.pk}@{session.starts_at.astimezone(UTC).isoformat()}"
