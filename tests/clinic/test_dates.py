"""One strict reading of dates and timestamps (clinic.dates), and every API field uses it."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from rest_framework import serializers

import clinic.urls  # noqa: F401 (imports every API module, so every serializer is defined)
from clinic import dates
from clinic.api import fields

NEW_YORK_WINTER = timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-10T10:00Z", datetime(2026, 3, 10, 10, tzinfo=UTC)),
        ("2026-03-10T10:00:05Z", datetime(2026, 3, 10, 10, 0, 5, tzinfo=UTC)),
        ("2026-03-10T10:00:05.25-05:00", datetime(2026, 3, 10, 10, 0, 5, 250000, NEW_YORK_WINTER)),
        ("2026-03-10T10:00:05.123456+00:00", datetime(2026, 3, 10, 10, 0, 5, 123456, tzinfo=UTC)),
        ("1900-01-01T00:00:00Z", datetime(1900, 1, 1, tzinfo=UTC)),
        ("2199-12-31T23:59:59Z", datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_timestamps_as_the_contract_writes_them(text, expected):
    assert dates.parse_datetime(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-10 10:00:00Z",  # a space for the T
        "20260310T100000Z",  # basic format
        "2026-3-10T10:00:00Z",
        "2026-03-10T10:00:00",  # no offset
        "2026-03-10T10Z",
        "2026-03-10T10:00:00z",
        "2026-03-10T10:00:00+0500",
        "2026-03-10T10:00:00.1234567Z",
        "2026-03-10T24:00:00Z",
        "2026-W11-2T10:00:00Z",
        "\uff12\uff10\uff12\uff16-03-10T10:00:00Z",  # fullwidth digits
        "9999-12-31T23:00:00Z",
        "0001-01-01T00:00:00Z",
        "1900-01-01T00:00:00+01:00",  # 1899 in UTC
        "2199-12-31T23:00:00-05:00",  # 2200 in UTC
        "",
        None,
        1741600800,
    ],
)
def test_anything_else_is_not_a_timestamp(text):
    with pytest.raises(ValueError, match="Enter a timestamp"):
        dates.parse_datetime(text)


@pytest.mark.parametrize(
    "text",
    [
        "19900101",
        "1990-1-1",
        "1990-01-1",
        "1990/01/01",
        "01/02/1990",
        "1990-02-30",
        "1990-W01-1",
        "9999-12-31",
        "0001-01-01",
        "1899-12-31",
        "2200-01-01",
        " 1990-01-01",
        "1990-01-01\n",
    ],
)
def test_dates_are_yyyy_mm_dd_within_range(text):
    with pytest.raises(ValueError, match="Enter a date"):
        dates.parse_date(text)
    assert dates.parse_date("1990-01-01") == date(1990, 1, 1)


def test_a_filter_may_take_a_date_or_a_timestamp_in_the_clinics_zone():
    assert dates.parse_date_or_datetime("2026-03-10") == date(2026, 3, 10)
    naive = dates.parse_date_or_datetime("2026-03-10T10:00")
    assert (naive.tzinfo, naive.isoformat()) == (None, "2026-03-10T10:00:00")
    with pytest.raises(ValueError):
        dates.parse_date_or_datetime("2026-03-10 10:00")


def _our_serializers():
    found, todo = [], [serializers.BaseSerializer]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] in {"clinic", "patients", "scheduling", "treatments"}:
            found.append(cls)
    return found


def _fields(serializer):
    for field in serializer.fields.values():
        yield field
        if isinstance(field, serializers.ListSerializer):
            field = field.child
        if isinstance(field, serializers.Serializer):
            yield from _fields(field)
        if isinstance(field, serializers.ListField):
            yield field.child


def test_every_date_field_of_every_serializer_is_the_strict_one():
    classes = _our_serializers()
    assert len(classes) > 40
    loose = [
        f"{cls.__module__}.{cls.__name__}.{field.field_name}"
        for cls in classes
        if issubclass(cls, serializers.Serializer) and cls is not fields.ModelSerializer
        for field in _fields(cls())
        if isinstance(field, (serializers.DateField, serializers.DateTimeField))
        and not isinstance(field, (fields.DateField, fields.DateTimeField))
    ]
    assert loose == []
