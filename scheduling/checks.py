"""The rules of booking a session, each in one place, for every path that books or offers a time:
a single booking and a reschedule (scheduling.services), availability (scheduling.availability)
and a series' plan and booking (scheduling.planning).

They read (the slot context, the series' sessions, the screening) but never write. The order of
the checks is the order of the answers: malformed input (400), the state of the series (409
invalid_state, 422 indication), the time itself (409 provider/room/patient_unavailable), then
the series' rules (409 series_full, 422 interval_too_short) and the patient's eligibility (422).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

from django.db import connection
from django.db.models import Q, QuerySet

from clinic.errors import DomainError, InvalidState
from clinic.models import Role, Room, User
from clinic.plain_sql import CompiledQuery
from scheduling import rules, slots
from scheduling.errors import (
    IndicationNotAllowed,
    IntervalTooShort,
    PatientNotEligible,
    PatientUnavailable,
    ProviderUnavailable,
    RoomUnavailable,
    SeriesFull,
)
from scheduling.models import ACTIVE_SESSION_STATUSES, Series, SeriesStatus, Session
from scheduling.timetable import TimeOff, WorkingInterval, span

SLOT_ERRORS: dict[str, type[DomainError]] = {
    slots.PROVIDER_UNAVAILABLE: ProviderUnavailable,
    slots.ROOM_UNAVAILABLE: RoomUnavailable,
    slots.PATIENT_UNAVAILABLE: PatientUnavailable,
}
SLOT_DETAILS = {
    slots.PROVIDER_UNAVAILABLE: (
        "The provider is not available then: another session, time off or outside working hours."
    ),
    slots.ROOM_UNAVAILABLE: "The room is not available then: another session or time off.",
    slots.PATIENT_UNAVAILABLE: "The patient has another session at that time.",
}


def resource_errors(*, clinic_id: UUID, provider: User, room: Room | None) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if provider.role != Role.PROVIDER or provider.clinic_id != clinic_id or not provider.is_active:
        errors["provider"] = ["Must be an active staff member with the provider role."]
    if room is not None and (room.clinic_id != clinic_id or not room.is_active):
        errors["room"] = ["Must be an active room of the clinic."]
    return errors


def duration_errors(duration_minutes: int) -> dict[str, list[str]]:
    if rules.MIN_DURATION_MINUTES <= duration_minutes <= rules.MAX_DURATION_MINUTES:
        return {}
    return {
        "duration_minutes": [
            f"Must be {rules.MIN_DURATION_MINUTES} to {rules.MAX_DURATION_MINUTES}."
        ]
    }


def booking_input_errors(
    *, series: Series, provider: User, room: Room | None, starts_at: datetime, now: datetime
) -> dict[str, list[str]]:
    errors = resource_errors(clinic_id=series.clinic_id, provider=provider, room=room)
    if starts_at < now:
        errors["starts_at"] = ["Must not be in the past."]
    return errors


def check_series_bookable(series: Series) -> None:
    """The series (with its patient loaded) may take sessions at all."""
    if series.status != SeriesStatus.ACTIVE:
        raise InvalidState(f"The series is {series.status}.")
    if series.patient.is_archived:
        raise InvalidState("The patient is archived.")
    # Checked again at each booking: a patient's skin type may be corrected after planning.
    if not rules.indication_allowed(series.indication, series.patient.fitzpatrick_type):
        raise IndicationNotAllowed()


def slot_error(code: str | None) -> DomainError | None:
    return SLOT_ERRORS[code](SLOT_DETAILS[code]) if code is not None else None


def placement_error(
    context: slots.SlotContext,
    start: datetime,
    end: datetime,
    *,
    other_days: Iterable[date],
    min_interval_days: int,
    reasons_on: Callable[[date], Sequence[str]],
    full_at: int | None = None,
) -> tuple[DomainError | None, list[str]]:
    """Why a session of the series cannot lie at [start, end), or None and its flags.

    `other_days` are the local days of the series' other sessions; `full_at` is the planned
    count when the session would be a new one (series_full), None for a move.
    """
    error = slot_error(slots.slot_conflict(context, start, end))
    if error is not None:
        return error, []
    other_days = list(other_days)
    if full_at is not None and len(other_days) >= full_at:
        return SeriesFull(f"The series already has its {full_at} planned sessions."), []
    day = start.astimezone(context.zone).date()
    close = rules.too_close(day, other_days, min_interval_days)
    if close:
        return IntervalTooShort(
            f"Sessions of a series must be at least {min_interval_days} days apart; "
            f"this series has a session on {', '.join(d.isoformat() for d in close)}."
        ), []
    blocking, flags = rules.booking_decision(reasons_on(day))
    if blocking:
        detail = f"The patient is not eligible on {day.isoformat()}."
        return PatientNotEligible(blocking, detail), []
    return None, flags


# --- Reads ------------------------------------------------------------------------------------


def _working_hours(*, provider_id: UUID) -> QuerySet[Any]:
    return WorkingInterval.objects.filter(provider_id=provider_id).values_list(
        "weekday", "starts_minute", "ends_minute"
    )


def _time_off(
    *, provider_id: UUID, room_id: UUID | None, start: datetime, end: datetime
) -> QuerySet[Any]:
    resources = Q(provider_id=provider_id)
    if room_id is not None:
        resources |= Q(room_id=room_id)
    return (
        TimeOff.objects.alias(span=span())
        .filter(resources, span__overlap=(start, end))
        .order_by()
        .values_list("provider_id", "starts_at", "ends_at")
    )


def _active_sessions(
    *,
    provider_id: UUID,
    room_id: UUID | None,
    patient_id: UUID | None,
    exclude_session_id: UUID | None,
    start: datetime,
    end: datetime,
) -> QuerySet[Any]:
    resources = Q(provider_id=provider_id)
    if room_id is not None:
        resources |= Q(room_id=room_id)
    if patient_id is not None:
        resources |= Q(patient_id=patient_id)
    # Each arm of the OR is one of the exclusion constraints' GiST indexes (same expression,
    # same status condition), so the read costs the same at 10,000 sessions or 1,000,000.
    sessions = Session.objects.alias(span=span()).filter(
        resources, status__in=ACTIVE_SESSION_STATUSES, span__overlap=(start, end)
    )
    if exclude_session_id is not None:
        sessions = sessions.exclude(pk=exclude_session_id)
    return sessions.order_by().values_list(
        "provider_id", "room_id", "patient_id", "starts_at", "ends_at"
    )


# Built and compiled by the ORM once per shape (clinic.plain_sql.CompiledQuery): every booking,
# reschedule, plan and availability request reads these three.
_WORKING_HOURS = CompiledQuery(_working_hours)
_TIME_OFF = CompiledQuery(_time_off)
_ACTIVE_SESSIONS = CompiledQuery(_active_sessions)


def slot_context(
    *,
    zone,
    provider_id: UUID,
    start: datetime,
    end: datetime,
    room_id: UUID | None = None,
    patient_id: UUID | None = None,
    exclude_session_id: UUID | None = None,
) -> slots.SlotContext:
    """What keeps the provider (and room, patient) busy between start and end: three queries,
    whatever the range."""
    working_hours = tuple(
        slots.WeeklyInterval(*row) for row in _WORKING_HOURS.rows(provider_id=provider_id)
    )
    provider: list[slots.Range] = []
    room: list[slots.Range] = []
    patient: list[slots.Range] = []
    for provider_of, starts_at, ends_at in _TIME_OFF.rows(
        provider_id=provider_id, room_id=room_id, start=start, end=end
    ):
        (provider if provider_of == provider_id else room).append((starts_at, ends_at))
    for provider_of, room_of, patient_of, starts_at, ends_at in _ACTIVE_SESSIONS.rows(
        provider_id=provider_id,
        room_id=room_id,
        patient_id=patient_id,
        exclude_session_id=exclude_session_id,
        start=start,
        end=end,
    ):
        if provider_of == provider_id:
            provider.append((starts_at, ends_at))
        if room_id is not None and room_of == room_id:
            room.append((starts_at, ends_at))
        if patient_id is not None and patient_of == patient_id:
            patient.append((starts_at, ends_at))
    return slots.SlotContext(
        zone=zone,
        working_hours=working_hours,
        provider_busy=slots.Busy.of(provider),
        room_busy=slots.Busy.of(room) if room_id is not None else None,
        patient_busy=slots.Busy.of(patient) if patient_id is not None else None,
    )


def lock_resources(*ids: UUID | None, shared: bool) -> None:
    """Serialise writes that change when a provider or room is free against bookings.

    A booking takes these advisory locks shared (bookings do not wait for each other: the
    exclusion constraints decide between them); recording time off or replacing working hours
    takes them exclusively, so it and a booking of the same provider or room come strictly one
    after the other, and each sees what the other committed. Taken after the patient and series
    locks, in id order.
    """
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        for resource_id in sorted({str(i) for i in ids if i is not None}):
            cursor.execute(
                f"SELECT {function}(hashtextextended(%s, 0))",
                [f"scheduling.resource:{resource_id}"],
            )
