"""The eligibility rules, table-driven at every boundary, plus properties (hypothesis)."""

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patients import rules
from patients.rules import Eligibility, ScreeningFacts

DOB = date(2000, 6, 15)  # 22 on 2022-06-15
SCREENED = date(2026, 1, 10)


def facts(
    contraindications=(), valid_until=SCREENED + timedelta(days=90), washout_ends_on=None
) -> ScreeningFacts:
    return ScreeningFacts(SCREENED, tuple(contraindications), valid_until, washout_ends_on)


@pytest.mark.parametrize(
    ("dob", "on", "expected_age"),
    [
        (date(2000, 6, 15), date(2022, 6, 14), 21),
        (date(2000, 6, 15), date(2022, 6, 15), 22),
        (date(2000, 6, 15), date(2022, 6, 16), 22),
        # 29 February: the birthday counts from 1 March in a common year.
        (date(2004, 2, 29), date(2026, 2, 28), 21),
        (date(2004, 2, 29), date(2026, 3, 1), 22),
        (date(2004, 2, 29), date(2028, 2, 29), 24),
        (date(2004, 2, 29), date(2028, 2, 28), 23),
    ],
)
def test_age_on(dob, on, expected_age):
    assert rules.age_on(dob, on) == expected_age


@pytest.mark.parametrize(
    ("dob", "reached_on"),
    [(date(2000, 6, 15), date(2022, 6, 15)), (date(2004, 2, 29), date(2026, 3, 1))],
)
def test_minimum_age_reached_on(dob, reached_on):
    assert rules.minimum_age_reached_on(dob) == reached_on


@pytest.mark.parametrize(
    ("last_dose", "months", "ends"),
    [
        (date(2026, 1, 15), 6, date(2026, 7, 15)),
        (date(2025, 8, 31), 6, date(2026, 3, 1)),  # no 31 February: never shorter
        (date(2025, 11, 30), 3, date(2026, 3, 1)),  # no 30 February in 2026
        (date(2023, 8, 29), 6, date(2024, 2, 29)),  # leap year has it
        (date(2026, 1, 15), 0, date(2026, 1, 15)),
        (None, 6, None),
    ],
)
def test_washout_ends_on(last_dose, months, ends):
    assert rules.washout_ends_on(last_dose, months) == ends


def test_screening_valid_until():
    assert rules.screening_valid_until(date(2026, 1, 10), 90) == date(2026, 4, 10)


def check(dob=DOB, screening=None, on=SCREENED) -> Eligibility:
    return rules.eligibility_on(date_of_birth=dob, screening=screening, on=on)


BOUNDARY_CASES = [
    # (name, dob, screening, on, eligible, reasons, eligible_from)
    ("no screening", DOB, None, SCREENED, False, ("no_screening",), None),
    ("clean", DOB, facts(), SCREENED, True, (), date(2022, 6, 15)),
    (
        "day before 22nd birthday",
        date(2004, 1, 11),
        facts(),
        date(2026, 1, 10),
        False,
        ("under_minimum_age",),
        date(2026, 1, 11),
    ),
    (
        "22nd birthday",
        date(2004, 1, 11),
        facts(),
        date(2026, 1, 11),
        True,
        (),
        date(2026, 1, 11),
    ),
    (
        "day after 22nd birthday",
        date(2004, 1, 11),
        facts(),
        date(2026, 1, 12),
        True,
        (),
        date(2026, 1, 11),
    ),
    (
        "leap-day birthday on 28 Feb",
        date(2004, 2, 29),
        facts(valid_until=date(2026, 12, 31)),
        date(2026, 2, 28),
        False,
        ("under_minimum_age",),
        date(2026, 3, 1),
    ),
    (
        "leap-day birthday on 1 March",
        date(2004, 2, 29),
        facts(valid_until=date(2026, 12, 31)),
        date(2026, 3, 1),
        True,
        (),
        date(2026, 3, 1),
    ),
    (
        "day before washout end",
        DOB,
        facts(washout_ends_on=date(2026, 2, 1)),
        date(2026, 1, 31),
        False,
        ("isotretinoin_washout",),
        date(2026, 2, 1),
    ),
    (
        "washout end",
        DOB,
        facts(washout_ends_on=date(2026, 2, 1)),
        date(2026, 2, 1),
        True,
        (),
        date(2026, 2, 1),
    ),
    (
        "day after washout end",
        DOB,
        facts(washout_ends_on=date(2026, 2, 1)),
        date(2026, 2, 2),
        True,
        (),
        date(2026, 2, 1),
    ),
    (
        "day before screening expiry",
        DOB,
        facts(),
        date(2026, 4, 9),
        True,
        (),
        date(2022, 6, 15),
    ),
    ("screening expiry day", DOB, facts(), date(2026, 4, 10), True, (), date(2022, 6, 15)),
    (
        "day after screening expiry",
        DOB,
        facts(),
        date(2026, 4, 11),
        False,
        ("screening_expired",),
        date(2022, 6, 15),
    ),
    (
        "everything at once",
        date(2005, 1, 1),
        facts(
            contraindications=("pregnant_or_nursing", "bleeding_disorder"),
            washout_ends_on=date(2026, 6, 1),
        ),
        date(2026, 5, 1),
        False,
        (
            "screening_expired",
            "under_minimum_age",
            "pregnant_or_nursing",
            "bleeding_disorder",
            "isotretinoin_washout",
        ),
        None,
    ),
]


@pytest.mark.parametrize(
    ("dob", "screening", "on", "eligible", "reasons", "eligible_from"),
    [case[1:] for case in BOUNDARY_CASES],
    ids=[case[0] for case in BOUNDARY_CASES],
)
def test_eligibility_boundaries(dob, screening, on, eligible, reasons, eligible_from):
    result = check(dob, screening, on)
    assert result == Eligibility(
        eligible, reasons, screening.valid_until if screening else None, eligible_from
    )


@pytest.mark.parametrize(("answer", "code"), sorted(rules.CONTRAINDICATION_ANSWERS.items()))
def test_each_contraindication_blocks_with_its_code(answer, code):
    codes = tuple(rules.contraindications({answer: True}))
    assert codes == (code,)
    result = check(screening=facts(contraindications=codes))
    assert result == Eligibility(False, (code,), facts().valid_until, None)


@pytest.mark.parametrize(("answer", "code"), sorted(rules.WARNING_ANSWERS.items()))
def test_each_warning_is_listed_and_does_not_block(answer, code):
    assert rules.warnings({answer: True}) == [code]
    assert rules.contraindications({answer: True}) == []


# --- properties ----------------------------------------------------------------------------

dates = st.dates(min_value=date(1930, 1, 1), max_value=date(2060, 12, 31))
answer_sets = st.fixed_dictionaries(
    {name: st.booleans() for name in (*rules.CONTRAINDICATION_ANSWERS, *rules.WARNING_ANSWERS)}
)


@st.composite
def screenings(draw):
    screened_on = draw(dates)
    answers = draw(answer_sets)
    last_dose = draw(st.none() | st.dates(max_value=screened_on, min_value=date(1930, 1, 1)))
    return ScreeningFacts(
        screened_on=screened_on,
        contraindications=tuple(rules.contraindications(answers)),
        valid_until=rules.screening_valid_until(
            screened_on, draw(st.integers(min_value=1, max_value=730))
        ),
        washout_ends_on=rules.washout_ends_on(last_dose, draw(st.integers(0, 60))),
    )


@given(dob=dates, screening=st.none() | screenings(), on=dates)
def test_eligible_exactly_when_no_reasons(dob, screening, on):
    result = check(dob, screening, on)
    assert result.eligible is (result.reasons == ())


@given(dob=dates, screening=screenings(), data=st.data())
def test_eligible_from_eligible_holds_until_valid_until(dob, screening, data):
    result = check(dob, screening, screening.screened_on)
    if result.eligible_from is None:
        assert screening.contraindications
        return
    if not check(dob, screening, result.eligible_from).eligible:
        # Only the screening's expiry may stand in the way on eligible_from.
        assert check(dob, screening, result.eligible_from).reasons == ("screening_expired",)
        return
    later = data.draw(st.dates(min_value=result.eligible_from, max_value=screening.valid_until))
    assert check(dob, screening, later).eligible


@given(dob=dates, screening=screenings(), on=dates)
def test_eligible_from_is_never_after_a_day_eligible(dob, screening, on):
    result = check(dob, screening, on)
    if result.eligible:
        assert result.eligible_from is not None and result.eligible_from <= on


def test_a_screenings_day_lists_the_washout_while_it_runs():
    ends = date(2026, 7, 20)
    assert rules.contraindications_on(("pregnant_or_nursing",), ends, date(2026, 7, 19)) == [
        "pregnant_or_nursing",
        "isotretinoin_washout",
    ]
    assert rules.contraindications_on((), ends, ends) == []
    assert rules.contraindications_on((), None, date(2026, 7, 19)) == []


def test_a_stored_washout_is_not_a_standing_contraindication():
    assert rules.standing_contraindications(["open_wounds", "isotretinoin_washout"]) == (
        "open_wounds",
    )
    # So eligibility after the washout's end, and eligible_from, are the washout end's call.
    screening = facts(
        contraindications=rules.standing_contraindications(["isotretinoin_washout"]),
        washout_ends_on=date(2026, 2, 1),
    )
    result = rules.eligibility_on(
        date_of_birth=date(1990, 1, 1), screening=screening, on=date(2026, 2, 1)
    )
    assert (result.eligible, result.reasons, result.eligible_from) == (
        True,
        (),
        date(2026, 2, 1),
    )


@pytest.mark.parametrize(
    ("answers", "reasons"),
    [
        ({}, []),
        ({"pregnant_or_nursing": False, "active_skin_infection": False}, []),
        ({"open_wounds_in_area": True}, ["open_wounds"]),
        (
            {
                "pregnant_or_nursing": True,
                "active_skin_infection": True,
                "open_wounds_in_area": True,
            },
            ["pregnant_or_nursing", "active_skin_infection", "open_wounds"],
        ),
    ],
)
def test_day_of_attestation_reasons(answers, reasons):
    assert rules.attestation_reasons(answers) == reasons
