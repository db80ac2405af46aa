"""Eligibility for SkinPen treatment: pure functions of plain values (no ORM, no clock).

Sources (../shared/domain.md): DEN160029 labelling for the minimum age (22) and the hard-stop
contraindications; clinic practice for the isotretinoin washout (default 6 months) and for how
long a screening stays valid (default 90 days), both per-clinic settings passed in here.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

MINIMUM_AGE_YEARS = 22
FITZPATRICK_TYPES = range(1, 7)  # I to VI
EARLIEST_BIRTH_YEAR = 1900

# Screening answer -> reason code. Each blocks booking and treatment while it holds.
CONTRAINDICATION_ANSWERS: Mapping[str, str] = {
    "pregnant_or_nursing": "pregnant_or_nursing",
    "active_skin_cancer_in_area": "active_skin_cancer",
    "open_wounds_in_area": "open_wounds",
    "bleeding_disorder": "bleeding_disorder",
    "metal_or_anesthetic_allergy": "metal_or_anesthetic_allergy",
    "active_skin_infection": "active_skin_infection",
}

# Screening answer -> warning code. Recorded and shown for the provider; never blocks.
WARNING_ANSWERS: Mapping[str, str] = {
    "anticoagulants": "anticoagulants",
    "keloid_history": "keloid_history",
    "herpes_simplex_history": "herpes_simplex_history",
    "eczema_or_psoriasis_in_area": "eczema_or_psoriasis_in_area",
    "recent_scars": "recent_scars",
    "scleroderma": "scleroderma",
    "immunosuppressed": "immunosuppressed",
    "diabetes": "diabetes",
}

# Asked again on the day of a session, at check-in (clinic setting day_of_attestation_required):
# answer -> reason code, as on the screening.
DAY_OF_ATTESTATION_ANSWERS: Mapping[str, str] = {
    answer: CONTRAINDICATION_ANSWERS[answer]
    for answer in ("pregnant_or_nursing", "active_skin_infection", "open_wounds_in_area")
}

WARNING_CODES = tuple(WARNING_ANSWERS.values())

NO_SCREENING = "no_screening"
SCREENING_EXPIRED = "screening_expired"
UNDER_MINIMUM_AGE = "under_minimum_age"
ISOTRETINOIN_WASHOUT = "isotretinoin_washout"

# The order reasons are listed in, so answers are stable for clients and tests.
REASON_ORDER = (
    NO_SCREENING,
    SCREENING_EXPIRED,
    UNDER_MINIMUM_AGE,
    *CONTRAINDICATION_ANSWERS.values(),
    ISOTRETINOIN_WASHOUT,
)


def add_years(day: date, years: int) -> date:
    """The same calendar day `years` later; 29 February becomes 1 March in a common year.

    Taking 1 March (not 28 February) means a person born on a leap day reaches an age on the
    first day they have unambiguously completed it: the conservative choice for an age limit.
    """
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


def add_months(day: date, months: int) -> date:
    """`months` calendar months later. A day the target month lacks (31 August + 6 months)
    rolls forward to the 1st of the next month, so a washout is never shorter than asked."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    if day.day > calendar.monthrange(year, month)[1]:
        return date(year, month, 1) + timedelta(days=calendar.monthrange(year, month)[1])
    return date(year, month, day.day)


def minimum_age_reached_on(date_of_birth: date) -> date:
    return add_years(date_of_birth, MINIMUM_AGE_YEARS)


def age_on(date_of_birth: date, on: date) -> int:
    years = on.year - date_of_birth.year
    return years if add_years(date_of_birth, years) <= on else years - 1


def washout_ends_on(last_dose_on: date | None, washout_months: int) -> date | None:
    """The first day the isotretinoin washout no longer blocks (None: no isotretinoin)."""
    if last_dose_on is None:
        return None
    return add_months(last_dose_on, washout_months)


def screening_valid_until(screened_on: date, valid_days: int) -> date:
    """The last day a screening holds: `valid_days` days after the day it was taken."""
    return screened_on + timedelta(days=valid_days)


def contraindications(answers: Mapping[str, object]) -> list[str]:
    """Hard stops named by the answers themselves (date-independent)."""
    return [code for answer, code in CONTRAINDICATION_ANSWERS.items() if answers.get(answer)]


def contraindications_on(
    standing: tuple[str, ...] | list[str], washout_ends_on: date | None, day: date
) -> list[str]:
    """Every contraindication that holds on `day`: the answers' own, and the isotretinoin
    washout while it runs (what a screening's result lists for its own day)."""
    holding = set(standing)
    if washout_ends_on is not None and day < washout_ends_on:
        holding.add(ISOTRETINOIN_WASHOUT)
    return list(_ordered(holding))


def standing_contraindications(stored: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The date-independent contraindications of a stored result: the washout is listed with
    the screening day's result, but whether it blocks on another day is its end date's call."""
    return tuple(code for code in stored if code != ISOTRETINOIN_WASHOUT)


def attestation_reasons(answers: Mapping[str, object]) -> list[str]:
    """The reasons a day-of attestation's answers give not to treat today (any "yes")."""
    return [code for answer, code in DAY_OF_ATTESTATION_ANSWERS.items() if answers.get(answer)]


def warnings(answers: Mapping[str, object]) -> list[str]:
    return [code for answer, code in WARNING_ANSWERS.items() if answers.get(answer)]


@dataclass(frozen=True)
class ScreeningFacts:
    """What a recorded screening established, as stored with it when it was taken."""

    screened_on: date
    contraindications: tuple[str, ...]
    valid_until: date
    washout_ends_on: date | None


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reasons: tuple[str, ...]
    valid_until: date | None
    eligible_from: date | None


def eligibility_on(
    *, date_of_birth: date, screening: ScreeningFacts | None, on: date
) -> Eligibility:
    """May this patient be booked or treated on `on`, given their latest screening?

    `eligible_from` is the first day on which age and washout no longer block; it is None when
    something no date cures blocks (a contraindication, or no screening at all).
    """
    reasons: set[str] = set()
    age_from = minimum_age_reached_on(date_of_birth)
    if on < age_from:
        reasons.add(UNDER_MINIMUM_AGE)
    if screening is None:
        reasons.add(NO_SCREENING)
        return Eligibility(False, _ordered(reasons), None, None)

    if on > screening.valid_until:
        reasons.add(SCREENING_EXPIRED)
    reasons.update(screening.contraindications)
    if screening.washout_ends_on is not None and on < screening.washout_ends_on:
        reasons.add(ISOTRETINOIN_WASHOUT)

    eligible_from = None
    if not screening.contraindications:
        eligible_from = max(d for d in (age_from, screening.washout_ends_on) if d is not None)
    return Eligibility(not reasons, _ordered(reasons), screening.valid_until, eligible_from)


def _ordered(reasons: set[str]) -> tuple[str, ...]:
    return tuple(code for code in REASON_ORDER if code in reasons)
