"""clinic.api.renderers.JSONRenderer writes what DRF's JSONRenderer writes, byte for byte."""

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest
from django.utils.functional import lazy
from hypothesis import given
from hypothesis import strategies as st
from rest_framework import renderers
from rest_framework.exceptions import ErrorDetail
from rest_framework.utils.serializer_helpers import ReturnDict, ReturnList

from clinic.api.renderers import JSONRenderer

drf = renderers.JSONRenderer()
ours = JSONRenderer()

# What serializers return: text (any Unicode, U+2028 and U+2029 included), 64-bit integers,
# booleans, null, in dicts and lists.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"])), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_a_serializer_s_values_are_written_as_drf_writes_them(value):
    assert ours.render(value) == drf.render(value)


OTHER_VALUES = {
    "aware datetime in UTC": datetime(2026, 12, 3, 9, 30, 0, 123456, tzinfo=UTC),
    "aware datetime with an offset": datetime(
        2026, 12, 3, 9, 30, tzinfo=timezone(timedelta(hours=-5))
    ),
    "naive datetime": datetime(2026, 12, 3, 9, 30),  # noqa: DTZ001 (as DRF writes one)
    "date": date(2026, 12, 3),
    "time": time(9, 30, 15),
    "timedelta": timedelta(minutes=90),
    "decimal": Decimal("1.25"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "lazy text": lazy(lambda: "Gesichtsbehandlung", str)(),
    "error detail": ErrorDetail("This field is required.", code="required"),
    "tuple": (1, "two", None),
    "return dict and list": ReturnDict({"a": ReturnList([1, 2], serializer=None)}, serializer=None),
    "line and paragraph separators": "a\u2028b\u2029c",
    "non-ASCII text": "Zoë, 東京, emoji \U0001f600",
    "control characters": "tab\tnew line\n\x00\x1f",
    "integer beyond 64 bits": 2**70,
    "integer keys": {1: "one", 2: "two"},
    "nested": {"when": [date(2026, 1, 1), {"at": datetime(2026, 1, 1, tzinfo=UTC)}]},
}


@pytest.mark.parametrize("value", OTHER_VALUES.values(), ids=OTHER_VALUES.keys())
def test_every_other_value_is_written_as_drf_writes_it(value):
    assert ours.render({"value": value}) == drf.render({"value": value})


def test_line_and_paragraph_separators_are_escaped():
    assert ours.render(["\u2028\u2029"]) == b'["\\u2028\\u2029"]'


def test_what_drf_refuses_is_refused_the_same_way():
    with pytest.raises(TypeError):
        ours.render({"value": object()})
    with pytest.raises(UnicodeEncodeError):
        ours.render({"value": "\ud800"})


def test_an_indent_asked_for_is_drf_s_own():
    accepted = "application/json; indent=4"
    body = ours.render({"a": [1]}, accepted, {})
    assert body == drf.render({"a": [1]}, accepted, {})
    assert b"\n    " in body


def test_nothing_is_written_for_none():
    assert ours.render(None) == b""


def test_a_finite_float_reads_back_the_same():
    value = {"x": 0.1, "y": 1e-05, "z": 12345.678}
    assert json.loads(ours.render(value)) == json.loads(drf.render(value))


def test_the_api_answers_with_this_renderer(client):
    response = client.get("/api/v1/patients/")
    assert response.status_code == 401
    assert type(response.accepted_renderer) is JSONRenderer
