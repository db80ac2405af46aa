"""slots.free_starts: availability's grid found per free stretch, the same answer as asking
slot_conflict of every start of the grid (hypothesis, across DST days and awkward zones)."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from clinic.rules import day_bounds
from scheduling import slots
from scheduling.slots import Busy, SlotContext, WeeklyInterval


def every_start(context, days, step_minutes, duration, not_before):
    """The definition: each start of the grid, asked of slot_conflict."""
    return [
        start
        for day in days
        for start in slots.day_grid(day, context.zone, step_minutes)
        if start >= not_before and slots.slot_conflict(context, start, start + duration) is None
    ]


def context(zone, working_hours=(), provider=(), room=None, patient=None):
    return SlotContext(
        zone=zone,
        working_hours=tuple(working_hours),
        provider_busy=Busy.of(provider),
        room_busy=Busy.of(room) if room is not None else None,
        patient_busy=Busy.of(patient) if patient is not None else None,
    )


NEW_YORK = ZoneInfo("America/New_York")
MONDAY = date(2026, 12, 7)


def at(hour, minute=0, day=MONDAY, zone=NEW_YORK):
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)


def test_the_gaps_between_busy_ranges_inside_working_hours():
    ctx = context(
        NEW_YORK,
        working_hours=[WeeklyInterval(0, 9 * 60, 12 * 60), WeeklyInterval(0, 13 * 60, 14 * 60)],
        provider=[(at(10), at(10, 30))],
        room=[(at(11, 15), at(11, 45))],
        patient=[(at(13, 30), at(15))],
    )
    found = slots.free_starts(ctx, [MONDAY], 15, timedelta(minutes=30), at(9, 15))
    # 11:45 would end after noon; 13:15 meets the patient's other appointment.
    expected = [at(9, 15), at(9, 30), at(10, 30), at(10, 45), at(13)]
    assert found == [moment.astimezone(UTC) for moment in expected]
    assert found == every_start(ctx, [MONDAY], 15, timedelta(minutes=30), at(9, 15))


def test_without_working_hours_the_last_start_of_a_day_may_run_past_midnight():
    ctx = context(NEW_YORK, provider=[(at(0), at(23))])
    found = slots.free_starts(ctx, [MONDAY], 30, timedelta(hours=2), at(0))
    assert found == [at(23).astimezone(UTC), at(23, 30).astimezone(UTC)]


def test_a_spring_forward_day_has_its_real_hours_of_starts():
    day = date(2026, 3, 8)  # New York: 02:00 -> 03:00
    found = slots.free_starts(context(NEW_YORK), [day], 60, timedelta(minutes=30), at(0, day=day))
    assert len(found) == 23
    assert found == every_start(context(NEW_YORK), [day], 60, timedelta(minutes=30), at(0, day=day))


def test_a_window_just_after_spring_forward_is_measured_in_real_time():
    # London, 29 March 2026: 01:00 GMT becomes 02:00 BST. A window of 02:00-02:02 takes no
    # 30-minute session (its end minus 30 minutes, on the wall clock, is a time that day lacks).
    london = ZoneInfo("Europe/London")
    day = date(2026, 3, 29)
    ctx = context(london, working_hours=[WeeklyInterval(6, 120, 122), WeeklyInterval(6, 180, 240)])
    not_before = datetime(2026, 3, 28, tzinfo=UTC)
    found = slots.free_starts(ctx, [day], 30, timedelta(minutes=30), not_before)
    assert found == [at(3, 0, day, london).astimezone(UTC), at(3, 30, day, london).astimezone(UTC)]
    assert found == every_start(ctx, [day], 30, timedelta(minutes=30), not_before)


def test_a_window_across_spring_forward_holds_a_session_of_its_real_length():
    # New York, 8 March 2026: 00:00-04:00 local is three hours; a 3-hour session fits at
    # midnight only.
    day = date(2026, 3, 8)
    ctx = context(NEW_YORK, working_hours=[WeeklyInterval(6, 0, 240)])
    not_before = datetime(2026, 3, 7, tzinfo=UTC)
    found = slots.free_starts(ctx, [day], 60, timedelta(hours=3), not_before)
    assert found == [at(0, 0, day).astimezone(UTC)]
    assert found == every_start(ctx, [day], 60, timedelta(hours=3), not_before)


ZONES = [
    ZoneInfo(name)
    for name in (
        "UTC",
        "America/New_York",
        "Europe/London",
        "Australia/Lord_Howe",
        "Asia/Kathmandu",
    )
]
# Around each zone's DST changes of 2026 and an ordinary week.
FIRST_DAYS = [date(2026, 3, 7), date(2026, 3, 28), date(2026, 4, 4), date(2026, 10, 24)]
FIRST_DAYS += [date(2026, 10, 31), date(2026, 12, 7)]


@st.composite
def cases(draw):
    zone = draw(st.sampled_from(ZONES))
    first = draw(st.sampled_from(FIRST_DAYS))
    days = slots.local_days(first, first + timedelta(days=draw(st.integers(0, 2))))
    start = day_bounds(first, zone)[0]
    span_minutes = len(days) * slots.MINUTES_PER_DAY

    def ranges():
        minutes = st.tuples(st.integers(-120, span_minutes), st.integers(1, 300))
        return st.lists(minutes, max_size=8).map(
            lambda found: [
                (start + timedelta(minutes=at), start + timedelta(minutes=at + length))
                for at, length in found
            ]
        )

    # Hours on the drawn days' weekdays (a DST day with no hours tests nothing of DST).
    weekdays = st.sampled_from([day.weekday() for day in days])
    interval = st.tuples(weekdays, st.integers(0, 1439), st.integers(1, 720)).map(
        lambda t: WeeklyInterval(t[0], t[1], min(t[1] + t[2], slots.MINUTES_PER_DAY))
    )
    ctx = context(
        zone,
        # Overlapping intervals too: stored hours are validated, the grid must not rely on it.
        working_hours=draw(st.lists(interval, max_size=6)),
        provider=draw(ranges()),
        room=draw(st.none() | ranges()),
        patient=draw(st.none() | ranges()),
    )
    step = draw(st.sampled_from([5, 7, 15, 30, 45, 60, 90, 1440]))
    duration = timedelta(minutes=draw(st.integers(5, 480)))
    not_before = start + timedelta(
        minutes=draw(st.integers(-60, span_minutes)), seconds=draw(st.integers(0, 59))
    )
    return ctx, days, step, duration, not_before


@settings(max_examples=400, deadline=None)
@given(cases())
def test_the_same_starts_as_asking_slot_conflict_of_each(case):
    ctx, days, step, duration, not_before = case
    assert slots.free_starts(ctx, days, step, duration, not_before) == every_start(
        ctx, days, step, duration, not_before
    )
