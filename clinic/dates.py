"""Dates and timestamps as the contract writes them, and nothing else: the one parser every
serializer field, filter, query parameter and export of the project reads them with
(`clinic.api.fields` builds the API's fields on it; domain code such as the tip-usage exporter
uses it directly).

ISO 8601 only: a date is `YYYY-MM-DD`, a timestamp `YYYY-MM-DDTHH:MM[:SS[.ffffff]]` with `Z`
or `±HH:MM`. Python's `fromisoformat` alone would also take `19900101`, a space for the `T`
or a week date, and Django's `parse_date` takes `1990-1-1`: a client's typo must not be
guessed into a booking. Years are kept within MIN_YEAR..MAX_YEAR, so adding a session's
duration, a day's bounds or an interval to a value can never overflow (`9999-12-31T23:00Z`
plus an hour is past Python's last year, and `0001-01-01T00:00Z` in New York is before its
first).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from django.utils import timezone

MIN_YEAR = 1900
MAX_YEAR = 2199

DATE_FORMAT = "YYYY-MM-DD"
DATETIME_FORMAT = "YYYY-MM-DDTHH:MM[:SS[.ffffff]](Z|±HH:MM)"

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?P<offset>Z|[+-]\d{2}:\d{2})?",
    re.ASCII,
)

DATE_MESSAGE = f"Enter a date as {DATE_FORMAT}, year {MIN_YEAR} to {MAX_YEAR}."
DATETIME_MESSAGE = (
    f"Enter a timestamp as {DATETIME_FORMAT} (ISO 8601 with its UTC offset), "
    f"year {MIN_YEAR} to {MAX_YEAR}."
)


def _in_range(value: date) -> bool:
    return MIN_YEAR <= value.year <= MAX_YEAR


def parse_date(value: Any) -> date:
    """A `YYYY-MM-DD` string as a date; ValueError for anything else."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError(DATE_MESSAGE)
    try:
        parsed = date.fromisoformat(value)
    except ValueError:  # a day that does not exist (1990-02-30)
        raise ValueError(DATE_MESSAGE) from None
    if not _in_range(parsed):
        raise ValueError(DATE_MESSAGE)
    return parsed


def parse_datetime(value: Any, *, offset_required: bool = True) -> datetime:
    """An ISO 8601 timestamp with its offset as an aware datetime; ValueError otherwise.
    With `offset_required=False` (a filter read in the clinic's zone) a naive one too."""
    match = _DATETIME.fullmatch(value) if isinstance(value, str) else None
    if match is None or (offset_required and not match["offset"]):
        raise ValueError(DATETIME_MESSAGE)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:  # 24:00, an offset of 24 hours or more
        raise ValueError(DATETIME_MESSAGE) from None
    # The year as written and as UTC: neither may leave the range.
    if not _in_range(parsed) or (
        timezone.is_aware(parsed) and not _in_range(parsed.astimezone(UTC))
    ):
        raise ValueError(DATETIME_MESSAGE)
    return parsed


def parse_date_or_datetime(value: Any) -> date | datetime:
    """A date, or a timestamp with or without its offset (a filter such as `since`, read in
    the clinic's zone when it names none)."""
    if isinstance(value, str) and _DATE.fullmatch(value):
        return parse_date(value)
    return parse_datetime(value, offset_required=False)
