"""Writes of the appointment book's frame: working hours, time off, calendar feeds.

Working hours and time off change when a provider or room is free, so each takes the resource's
advisory lock exclusively (scheduling.checks.lock_resources) before it looks at sessions: a
booking of that provider or room, which holds the same lock shared, either committed before (and
time off over it is refused with its id) or starts after (and sees the time off).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from clinic import audit
from clinic.errors import InvalidInput
from clinic.models import Role, Room, User
from scheduling import checks, slots
from scheduling.errors import SessionsConflict
from scheduling.models import ACTIVE_SESSION_STATUSES, Session
from scheduling.timetable import CalendarFeed, TimeOff, WorkingInterval, span


def _require_provider(staff: User, field: str = "provider") -> None:
    if staff.role != Role.PROVIDER:
        raise InvalidInput({field: ["Must be a staff member with the provider role."]})


# --- Working hours ----------------------------------------------------------------------------


def set_working_hours(
    *, actor: User, provider: User, intervals: Sequence[slots.WeeklyInterval]
) -> list[WorkingInterval]:
    """Replace the provider's weekly working hours (an empty list: no limit)."""
    _require_provider(provider, "staff")
    errors = slots.interval_errors(intervals)
    if errors:
        raise InvalidInput({f"intervals.{i}": [message] for i, message in sorted(errors.items())})
    with transaction.atomic():
        checks.lock_resources(provider.pk, shared=False)
        WorkingInterval.objects.filter(provider=provider).delete()
        rows = WorkingInterval.objects.bulk_create(
            WorkingInterval(
                clinic_id=provider.clinic_uuid,
                provider=provider,
                weekday=i.weekday,
                starts_minute=i.starts_minute,
                ends_minute=i.ends_minute,
            )
            for i in intervals
        )
        audit.record(
            actor=actor,
            action="working_hours.set",
            object_type="staff",
            object_id=provider.pk,
            detail={"intervals": len(rows)},
        )
    return sorted(rows, key=lambda row: (row.weekday, row.starts_minute))


def working_hours_of(provider: User) -> list[slots.WeeklyInterval]:
    return [
        slots.WeeklyInterval(*row)
        for row in WorkingInterval.objects.filter(provider=provider)
        .order_by("weekday", "starts_minute")
        .values_list("weekday", "starts_minute", "ends_minute")
    ]


# --- Time off ---------------------------------------------------------------------------------


def create_time_off(
    *,
    actor: User,
    starts_at: datetime,
    ends_at: datetime,
    provider: User | None = None,
    room: Room | None = None,
    reason: str = "",
) -> TimeOff:
    if (provider is None) == (room is None):
        raise InvalidInput({"non_field_errors": ["Give exactly one of provider or room."]})
    if ends_at <= starts_at:
        raise InvalidInput({"ends_at": ["Must be after starts_at."]})
    if provider is not None:
        _require_provider(provider)
    with transaction.atomic():
        checks.lock_resources(
            provider.pk if provider is not None else None,
            room.pk if room is not None else None,
            shared=False,
        )
        sessions = Session.objects.alias(span=span()).filter(
            status__in=ACTIVE_SESSION_STATUSES, span__overlap=(starts_at, ends_at)
        )
        sessions = (
            sessions.filter(provider=provider)
            if provider is not None
            else sessions.filter(room=room)
        )
        clashing = list(sessions.order_by("starts_at", "id").values_list("id", flat=True))
        if clashing:
            raise SessionsConflict(clashing)
        try:
            with transaction.atomic():
                time_off = TimeOff.objects.create(
                    clinic_id=actor.clinic_uuid,
                    provider=provider,
                    room=room,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    reason=reason,
                    created_by=actor,
                )
        except IntegrityError as exc:  # only the check constraints the lines above enforce
            raise InvalidInput({"non_field_errors": ["Invalid time off."]}) from exc
        audit.record(
            actor=actor,
            action="time_off.create",
            object_type="time_off",
            object_id=time_off.pk,
        )
    return time_off


@transaction.atomic
def delete_time_off(*, actor: User, time_off: TimeOff) -> None:
    TimeOff.objects.filter(pk=time_off.pk).delete()
    audit.record(
        actor=actor,
        action="time_off.delete",
        object_type="time_off",
        object_id=time_off.pk,
        detail={
            "starts_at": time_off.starts_at.isoformat(),
            "ends_at": time_off.ends_at.isoformat(),
        },
    )


# --- Calendar feed ----------------------------------------------------------------------------


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def rotate_calendar_feed(*, actor: User, staff: User) -> str:
    """A new secret for the staff member's calendar feed; the previous one stops working.
    Returns the secret (shown once; only its hash is stored)."""
    # The row lock makes two rotations at once come one after the other.
    User.objects.select_for_update(no_key=True).filter(pk=staff.pk).first()
    secret = secrets.token_urlsafe(32)
    CalendarFeed.objects.update_or_create(
        staff=staff,
        defaults={
            "clinic_id": staff.clinic_uuid,
            "secret_hash": hash_secret(secret),
            "created_by": actor,
            "created_at": timezone.now(),
        },
    )
    audit.record(
        actor=actor, action="calendar_feed.rotate", object_type="staff", object_id=staff.pk
    )
    return secret


def feed_by_secret(secret: str) -> CalendarFeed | None:
    return (
        CalendarFeed.objects.select_related("staff", "clinic")
        .filter(secret_hash=hash_secret(secret))
        .first()
    )
