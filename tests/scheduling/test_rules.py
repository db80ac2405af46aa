"""The pure booking rules: no database, no clock."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from clinic.rules import day_bounds as local_day_bounds
from scheduling import rules

STATUSES = ["booked", "checked_in", "completed", "cancelled", "no_show"]
ALLOWED = {
    ("booked", "checked_in"),
    ("booked", "cancelled"),
    ("booked", "no_show"),
    # Treatment only in the chair: a booked session is checked in before it is completed.
    ("checked_in", "completed"),
    ("checked_in", "cancelled"),
    ("checked_in", "no_show"),
}


@pytest.mark.parametrize("current", STATUSES)
@pytest.mark.parametrize("target", STATUSES)
def test_state_machine_table(current, target):
    assert rules.can_transition(current, target) == ((current, target) in ALLOWED)


def test_sources_of_each_target():
    assert rules.sources_of("checked_in") == {"booked"}
    assert rules.sources_of("completed") == {"checked_in"}
    assert rules.sources_of("cancelled") == {"booked", "checked_in"}
    assert rules.sources_of("no_show") == {"booked", "checked_in"}
    assert rules.sources_of("booked") == frozenset()


@pytest.mark.parametrize(
    ("indication", "fitzpatrick_type", "allowed"),
    [
        ("neck_wrinkles", 1, False),
        ("neck_wrinkles", 2, True),
        ("neck_wrinkles", 3, True),
        ("neck_wrinkles", 4, True),
        ("neck_wrinkles", 5, False),
        ("neck_wrinkles", 6, False),
        ("acne_scars", 1, True),
        ("acne_scars", 6, True),
        ("fine_lines_wrinkles", 6, True),
    ],
)
def test_neck_wrinkles_only_for_fitzpatrick_two_to_four(indication, fitzpatrick_type, allowed):
    assert rules.indication_allowed(indication, fitzpatrick_type) is allowed


def test_too_close_looks_before_and_after():
    day = date(2026, 5, 1)
    others = [date(2026, 4, 10), date(2026, 4, 11), date(2026, 5, 21), date(2026, 5, 22)]
    assert rules.too_close(day, others, 21) == [date(2026, 4, 11), date(2026, 5, 21)]
    assert rules.too_close(day, [day], 21) == [day]
    assert rules.too_close(day, [], 21) == []


@pytest.mark.parametrize(
    ("reasons", "blocking", "flags"),
    [
        ((), (), []),
        (("screening_expired",), (), ["screening_expired"]),
        (("no_screening",), ("no_screening",), []),
        (
            ("screening_expired", "isotretinoin_washout"),
            ("screening_expired", "isotretinoin_washout"),
            [],
        ),
        (("under_minimum_age",), ("under_minimum_age",), []),
    ],
)
def test_booking_decision(reasons, blocking, flags):
    assert rules.booking_decision(reasons) == (blocking, flags)


@pytest.mark.parametrize(
    ("reasons", "flags"),
    [
        ((), []),
        (("screening_expired",), ["screening_expired"]),
        (("pregnant_or_nursing",), ["not_eligible"]),
        (("screening_expired", "isotretinoin_washout"), ["screening_expired", "not_eligible"]),
    ],
)
def test_session_flags(reasons, flags):
    assert rules.session_flags(reasons) == flags


def test_next_due_on():
    due = {
        "planned_sessions": 3,
        "interval_days": 30,
        "created_on": date(2026, 1, 5),
    }
    assert rules.next_due_on(
        is_active=True, active_sessions=0, last_session_on=None, **due
    ) == date(2026, 1, 5)
    assert rules.next_due_on(
        is_active=True, active_sessions=1, last_session_on=date(2026, 1, 10), **due
    ) == date(2026, 2, 9)
    assert (
        rules.next_due_on(
            is_active=True, active_sessions=3, last_session_on=date(2026, 3, 10), **due
        )
        is None
    )
    assert (
        rules.next_due_on(
            is_active=False, active_sessions=1, last_session_on=date(2026, 1, 10), **due
        )
        is None
    )


@pytest.mark.parametrize(
    ("day", "start", "end"),
    [
        # Spring forward: 23 hours, EST at midnight, EDT at the next.
        (
            date(2026, 3, 8),
            datetime(2026, 3, 8, 5, tzinfo=UTC),
            datetime(2026, 3, 9, 4, tzinfo=UTC),
        ),
        # Fall back: 25 hours.
        (
            date(2026, 11, 1),
            datetime(2026, 11, 1, 4, tzinfo=UTC),
            datetime(2026, 11, 2, 5, tzinfo=UTC),
        ),
        (
            date(2026, 6, 1),
            datetime(2026, 6, 1, 4, tzinfo=UTC),
            datetime(2026, 6, 2, 4, tzinfo=UTC),
        ),
    ],
)
def test_a_local_day_runs_from_local_midnight_to_local_midnight(day, start, end):
    assert local_day_bounds(day, ZoneInfo("America/New_York")) == (start, end)


def test_check_in_opens_at_the_start_of_the_sessions_local_day():
    start, _end = local_day_bounds(date(2026, 3, 8), ZoneInfo("America/New_York"))
    assert rules.check_in_open(start, start) is True
    assert rules.check_in_open(start, datetime(2026, 3, 8, 4, 59, 59, tzinfo=UTC)) is False
    assert rules.check_in_open(start, datetime(2026, 3, 8, 5, tzinfo=UTC)) is True
