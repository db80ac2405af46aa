"""Free slots, and a series' plan: both ask scheduling.checks, the rules a booking meets, of
every candidate time, over data loaded once for the whole range (a constant number of queries,
whatever the number of days, slots or sessions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from clinic.errors import DomainError, InvalidInput
from clinic.models import Clinic, Room, User
from clinic.rules import day_bounds
from patients import rules as patient_rules
from patients import selectors as patient_selectors
from patients.models import Patient
from scheduling import checks, slots
from scheduling.errors import SeriesFull, SessionNotPlaced
from scheduling.models import Series
from scheduling.selectors import active_sessions_of_series


def _reasons_on(patient: Patient) -> Callable[[date], Sequence[str]]:
    """The patient's eligibility reasons by day, from one read of the latest screening."""
    facts = patient_selectors.screening_facts(patient_selectors.latest_screening(patient.pk))
    cache: dict[date, Sequence[str]] = {}

    def reasons(day: date) -> Sequence[str]:
        if day not in cache:
            cache[day] = patient_rules.eligibility_on(
                date_of_birth=patient.date_of_birth, screening=facts, on=day
            ).reasons
        return cache[day]

    return reasons


def free_slots(
    *,
    clinic: Clinic,
    provider: User,
    first_day: date,
    last_day: date,
    now: datetime,
    room: Room | None = None,
    series: Series | None = None,
    duration_minutes: int = 60,
    step_minutes: int = 15,
) -> list[slots.Range]:
    """Every start on the step grid (from each local midnight) where a session of that length
    could be booked now, in order."""
    errors = checks.resource_errors(clinic_id=clinic.pk, provider=provider, room=room)
    errors.update(checks.duration_errors(duration_minutes))
    if not slots.MIN_STEP_MINUTES <= step_minutes <= slots.MAX_STEP_MINUTES:
        errors["step_minutes"] = [f"Must be {slots.MIN_STEP_MINUTES} to {slots.MAX_STEP_MINUTES}."]
    if last_day < first_day:
        errors["to"] = ["Must not be before from."]
    elif (last_day - first_day).days + 1 > slots.MAX_AVAILABILITY_DAYS:
        errors["to"] = [f"At most {slots.MAX_AVAILABILITY_DAYS} days from `from`."]
    if errors:
        raise InvalidInput(errors)
    zone = clinic.zone
    duration = timedelta(minutes=duration_minutes)
    if series is not None:
        checks.check_series_bookable(series)
    context = checks.slot_context(
        zone=zone,
        provider_id=provider.pk,
        room_id=room.pk if room is not None else None,
        patient_id=series.patient_id if series is not None else None,
        start=day_bounds(first_day, zone)[0],
        end=day_bounds(last_day, zone)[1] + duration,
    )
    starts = slots.free_starts(
        context, slots.local_days(first_day, last_day), step_minutes, duration, now
    )
    if series is None:
        return [(start, start + duration) for start in starts]
    other_days = [clinic.local_date(at) for _id, at in active_sessions_of_series(series.pk)]
    reasons_on = _reasons_on(series.patient)

    def free(start: datetime, end: datetime) -> bool:
        error, _flags = checks.placement_error(
            context,
            start,
            end,
            other_days=other_days,
            min_interval_days=clinic.min_interval_days,
            reasons_on=reasons_on,
        )
        return error is None

    # A series' slot also meets its patient's eligibility and the interval rule, asked of each
    # start that is free of the schedule.
    return [(start, start + duration) for start in starts if free(start, start + duration)]


# --- Planning the rest of a series ------------------------------------------------------------


@dataclass(frozen=True)
class PlannedSession:
    number: int
    starts_at: datetime
    ends_at: datetime
    flags: list[str]


def _later_grid(after: datetime, until: datetime, zone) -> Iterator[datetime]:
    """The 15-minute grid (from local midnight) strictly after `after`, up to `until`."""
    for day in slots.local_days(after.astimezone(zone).date(), until.astimezone(zone).date()):
        for moment in slots.day_grid(day, zone, slots.PLAN_GRID_MINUTES):
            if after < moment <= until:
                yield moment


def plan_series(
    *,
    series: Series,
    provider: User,
    first_starts_at: datetime,
    now: datetime,
    room: Room | None = None,
    duration_minutes: int = 60,
    window_days: int = 0,
) -> list[PlannedSession]:
    """The series' remaining planned sessions: the first at `first_starts_at`, each next one
    `interval_days` after the previous as placed, at the same local wall-clock time; a time that
    cannot be booked moves to the earliest bookable 15-minute slot within `window_days` after
    it. Raises SessionNotPlaced for the first session that cannot be placed. Writes nothing."""
    errors = checks.booking_input_errors(
        series=series, provider=provider, room=room, starts_at=first_starts_at, now=now
    )
    if "starts_at" in errors:
        errors["first_starts_at"] = errors.pop("starts_at")
    errors.update(checks.duration_errors(duration_minutes))
    if not 0 <= window_days <= slots.MAX_WINDOW_DAYS:
        errors["window_days"] = [f"Must be 0 to {slots.MAX_WINDOW_DAYS}."]
    if errors:
        raise InvalidInput(errors)
    checks.check_series_bookable(series)
    clinic = series.clinic
    zone = clinic.zone
    existing = [at for _id, at in active_sessions_of_series(series.pk)]
    remaining = series.planned_sessions - len(existing)
    if remaining <= 0:
        raise SeriesFull(f"The series already has its {series.planned_sessions} planned sessions.")
    duration = timedelta(minutes=duration_minutes)
    # The furthest any session can go: every gap one interval plus the whole window.
    horizon = timedelta(days=remaining * (series.interval_days + window_days) + 2)
    context = checks.slot_context(
        zone=zone,
        provider_id=provider.pk,
        room_id=room.pk if room is not None else None,
        patient_id=series.patient_id,
        start=first_starts_at,
        end=first_starts_at + horizon,
    )
    other_days = [clinic.local_date(at) for at in existing]
    reasons_on = _reasons_on(series.patient)

    def place(start: datetime) -> tuple[DomainError | None, list[str]]:
        return checks.placement_error(
            context,
            start,
            start + duration,
            other_days=other_days,
            min_interval_days=clinic.min_interval_days,
            reasons_on=reasons_on,
        )

    planned: list[PlannedSession] = []
    target = first_starts_at
    for index in range(remaining):
        error, flags = place(target)
        placed: datetime | None = target if error is None else None
        if placed is None and window_days:
            until = slots.same_wall_clock_days_later(target, window_days, zone)
            for candidate in _later_grid(target, until, zone):
                moved_error, flags = place(candidate)
                if moved_error is None:
                    placed = candidate
                    break
        number = 1 + index + sum(1 for at in existing if at < (placed or target))
        if placed is None:
            assert error is not None  # noqa: S101 - placed is None only after an error
            raise SessionNotPlaced(number, error)
        planned.append(PlannedSession(number, placed, placed + duration, flags))
        context = context.plus(placed, placed + duration)
        other_days.append(clinic.local_date(placed))
        target = slots.same_wall_clock_days_later(placed, series.interval_days, zone)
    return planned
