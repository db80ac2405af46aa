"""When a provider, a room and a patient are free: pure rules over plain values (no ORM, no clock).

Single booking, availability and series planning all decide "may a session lie here?" with
`slot_conflict`, over a `SlotContext` loaded once (scheduling.checks.slot_context): a booking
loads it for its own hour, availability and planning for the whole range they look at.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from clinic.rules import day_bounds

MINUTES_PER_DAY = 24 * 60
PLAN_GRID_MINUTES = 15
MAX_AVAILABILITY_DAYS = 31
MAX_WINDOW_DAYS = 31
MIN_STEP_MINUTES = 5
MAX_STEP_MINUTES = MINUTES_PER_DAY

PROVIDER_UNAVAILABLE = "provider_unavailable"
ROOM_UNAVAILABLE = "room_unavailable"
PATIENT_UNAVAILABLE = "patient_unavailable"

Range = tuple[datetime, datetime]


@dataclass(frozen=True)
class WeeklyInterval:
    """Working hours on one weekday (0 = Monday): [starts_minute, ends_minute) after local
    midnight; ends_minute may be 1440 (24:00)."""

    weekday: int
    starts_minute: int
    ends_minute: int


def parse_hhmm(value: str, *, allow_midnight_end: bool = False) -> int:
    """ "HH:MM" as minutes after midnight; "24:00" only as an end. Raises ValueError."""
    digits = value[:2] + value[3:]
    if len(value) != 5 or value[2] != ":" or not (digits.isascii() and digits.isdigit()):
        raise ValueError("Use HH:MM.")
    hours, minutes = int(value[:2]), int(value[3:])
    if allow_midnight_end and (hours, minutes) == (24, 0):
        return MINUTES_PER_DAY
    if hours > 23 or minutes > 59:
        raise ValueError("Use HH:MM from 00:00 to 23:59.")
    return hours * 60 + minutes


def format_hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def interval_errors(intervals: Sequence[WeeklyInterval]) -> dict[int, str]:
    """Why an interval of a week's working hours is refused, by its position in the list."""
    errors: dict[int, str] = {}
    for index, interval in enumerate(intervals):
        if not 0 <= interval.weekday <= 6:
            errors[index] = "weekday must be 0 (Monday) to 6 (Sunday)."
        elif interval.ends_minute <= interval.starts_minute:
            errors[index] = "ends must be after starts."
    ordered = sorted(
        (i for i in range(len(intervals)) if i not in errors),
        key=lambda i: (intervals[i].weekday, intervals[i].starts_minute),
    )
    reach: dict[int, int] = {}  # the latest end so far, per weekday
    for index in ordered:
        interval = intervals[index]
        if interval.starts_minute < reach.get(interval.weekday, -1):
            errors[index] = "overlaps another interval of the same weekday."
        reach[interval.weekday] = max(reach.get(interval.weekday, -1), interval.ends_minute)
    return errors


def _at_minute(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """The instant of a wall-clock minute of a local day (24:00 is the next local midnight)."""
    day += timedelta(days=minute // MINUTES_PER_DAY)
    minute %= MINUTES_PER_DAY
    return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)


def working_windows(intervals: Iterable[WeeklyInterval], day: date, zone: ZoneInfo) -> list[Range]:
    """The instants a provider works on one local day: each interval resolved on that day, so
    a DST change shifts the instants and keeps the wall-clock times."""
    return [
        (_at_minute(day, i.starts_minute, zone), _at_minute(day, i.ends_minute, zone))
        for i in intervals
        if i.weekday == day.weekday()
    ]


@dataclass(frozen=True)
class Busy:
    """Busy time as disjoint [start, end) ranges in order; touching ranges do not overlap."""

    starts: list[datetime] = field(default_factory=list)
    ends: list[datetime] = field(default_factory=list)

    @classmethod
    def of(cls, ranges: Iterable[Range]) -> Busy:
        starts: list[datetime] = []
        ends: list[datetime] = []
        for start, end in sorted(ranges):
            if starts and start < ends[-1]:
                ends[-1] = max(ends[-1], end)
            else:
                starts.append(start)
                ends.append(end)
        return cls(starts, ends)

    def overlaps(self, start: datetime, end: datetime) -> bool:
        # The last range starting before `end` is the only one that can reach past `start`.
        index = bisect.bisect_left(self.starts, end) - 1
        return index >= 0 and self.ends[index] > start

    def ranges(self) -> Iterator[Range]:
        return zip(self.starts, self.ends, strict=True)

    def plus(self, start: datetime, end: datetime) -> Busy:
        return Busy.of([*self.ranges(), (start, end)])


@dataclass(frozen=True)
class SlotContext:
    """Everything that decides whether a time is free, for one provider (and room, patient)."""

    zone: ZoneInfo
    working_hours: tuple[WeeklyInterval, ...]
    # Active sessions and time off, per resource.
    provider_busy: Busy
    room_busy: Busy | None = None
    patient_busy: Busy | None = None
    # The working windows of each local day asked about, resolved once: availability asks of
    # every slot of a day.
    _windows: dict[date, list[Range]] = field(default_factory=dict, compare=False, repr=False)

    def within_working_hours(self, start: datetime, end: datetime) -> bool:
        """A session lies wholly inside one working interval. No intervals: no limit."""
        if not self.working_hours:
            return True
        day = start.astimezone(self.zone).date()
        windows = self._windows.get(day)
        if windows is None:
            windows = self._windows[day] = working_windows(self.working_hours, day, self.zone)
        return any(lo <= start and end <= hi for lo, hi in windows)

    def plus(self, start: datetime, end: datetime) -> SlotContext:
        """The context once a session at [start, end) is placed (a plan's earlier sessions)."""
        return SlotContext(
            zone=self.zone,
            working_hours=self.working_hours,
            provider_busy=self.provider_busy.plus(start, end),
            room_busy=self.room_busy.plus(start, end) if self.room_busy is not None else None,
            patient_busy=(
                self.patient_busy.plus(start, end) if self.patient_busy is not None else None
            ),
        )


def slot_conflict(context: SlotContext, start: datetime, end: datetime) -> str | None:
    """Who cannot take a session at [start, end): the provider (outside working hours, time off,
    another session), else the room (time off, another session), else the patient."""
    if not context.within_working_hours(start, end) or context.provider_busy.overlaps(start, end):
        return PROVIDER_UNAVAILABLE
    if context.room_busy is not None and context.room_busy.overlaps(start, end):
        return ROOM_UNAVAILABLE
    if context.patient_busy is not None and context.patient_busy.overlaps(start, end):
        return PATIENT_UNAVAILABLE
    return None


def free_starts(
    context: SlotContext,
    days: Iterable[date],
    step_minutes: int,
    duration: timedelta,
    not_before: datetime,
) -> list[datetime]:
    """The starts of each day's step grid (day_grid), at or after `not_before`, where a
    session of `duration` has no slot_conflict, in order.

    The same answer as asking slot_conflict of every start, found per free stretch instead:
    within each working window, the gaps between busy ranges (provider, room and patient
    together), and in each gap the grid's starts that fit, by arithmetic. A day of 96 starts
    costs a few steps per window and busy range, not a few calls per start.
    """
    # Every instant in UTC from here: arithmetic on a local time is wall-clock arithmetic
    # (02:02 - 30 minutes is 01:32, which a spring-forward day does not have).
    busy = Busy.of(
        (start.astimezone(UTC), end.astimezone(UTC))
        for resource in (context.provider_busy, context.room_busy, context.patient_busy)
        if resource is not None
        for start, end in resource.ranges()
    )
    not_before = not_before.astimezone(UTC)
    step = timedelta(minutes=step_minutes)
    found: list[datetime] = []
    for day in days:
        day_start, day_end = day_bounds(day, context.zone)
        # A start lies in [day_start, day_end); without working hours nothing else limits it
        # (a session may run past midnight).
        windows: list[tuple[datetime, datetime | None]] = [(day_start, None)]
        if context.working_hours:
            found_windows = working_windows(context.working_hours, day, context.zone)
            windows = [(low.astimezone(UTC), high.astimezone(UTC)) for low, high in found_windows]
            windows.sort()
        last_of_day = (day_end - day_start - _TICK) // step
        starts: list[datetime] = []
        for low, high in windows:
            # The starts s with low <= s and s + duration <= high, clear of each busy range:
            # s + duration <= its start, or s >= its end. Ranges ending by `earliest` are past.
            earliest = max(low, day_start, not_before)
            index = bisect.bisect_right(busy.ends, earliest)
            while earliest < day_end:
                gap_end = busy.starts[index] if index < len(busy.starts) else None
                ends_by = [end for end in (gap_end, high) if end is not None]
                last = last_of_day
                if ends_by:
                    last = min(last, (min(ends_by) - duration - day_start) // step)
                first = -((day_start - earliest) // step)  # the ceiling, in steps
                starts.extend(day_start + k * step for k in range(first, last + 1))
                if gap_end is None or (high is not None and gap_end >= high):
                    break
                earliest = max(earliest, busy.ends[index])
                index += 1
        # The windows of a weekday do not overlap (interval_errors); if stored ones ever did,
        # a start is still given once.
        found.extend(sorted(set(starts)) if len(windows) > 1 else starts)
    return found


_TICK = timedelta(microseconds=1)


def local_days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def day_grid(day: date, zone: ZoneInfo, step_minutes: int) -> Iterator[datetime]:
    """Starts every `step_minutes` of elapsed time from local midnight to the next: a 23- or
    25-hour DST day has as many starts as it has real time."""
    start, end = day_bounds(day, zone)
    step = timedelta(minutes=step_minutes)
    moment = start
    while moment < end:
        yield moment
        moment += step


def same_wall_clock_days_later(moment: datetime, days: int, zone: ZoneInfo) -> datetime:
    """`days` calendar days after `moment` at the same local wall-clock time (across DST)."""
    local = moment.astimezone(zone)
    return datetime.combine(local.date() + timedelta(days=days), local.time(), tzinfo=zone)
