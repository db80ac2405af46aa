"""Hostile dates and timestamps on the appointment book: each answers 400 problem+json
`invalid` naming the field, never a 500 (an attacker's probes of the running server found
`9999-12-31T23:00:00Z` overflowing the session's end, and `?date=9999-12-31` its day)."""

import pytest

from scheduling.models import Session
from tests.factories import SessionFactory

PROBLEM = "application/problem+json"
# Each is refused as a timestamp: past the years arithmetic is safe in, not ISO 8601 as the
# contract writes it, or without the offset that says whose 10:00 it is.
BAD_TIMESTAMPS = [
    "9999-12-31T23:00:00Z",
    "0001-01-01T00:00:00Z",
    "2199-12-31T23:00:00-05:00",  # 2200 in UTC
    "2026-03-10 10:00:00Z",
    "20260310T100000Z",
    "2026-3-10T10:00:00Z",
    "2026-03-10T10:00:00",
    "2026-03-10",
    "2026-03-10T10:00:00.1234567Z",
    "2026-03-10T10:00:00+99:00",
    "2026-W11-2T10:00:00Z",
]
BAD_DATES = ["9999-12-31", "0001-01-01", "19900101", "1990-1-1", "2026-02-30", "2026-03-10T00:00Z"]


def assert_invalid(response, field: str) -> None:
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert (body["code"], list(body["errors"])) == ("invalid", [field])


@pytest.mark.django_db
@pytest.mark.parametrize("starts_at", BAD_TIMESTAMPS)
def test_booking_refuses_a_hostile_starts_at(front_desk, provider, api, series, starts_at):
    response = api(front_desk).post(
        "/api/v1/sessions/",
        {"series": str(series.id), "provider": str(provider.id), "starts_at": starts_at},
    )
    assert_invalid(response, "starts_at")
    assert Session.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("starts_at", BAD_TIMESTAMPS)
def test_rescheduling_refuses_a_hostile_starts_at(front_desk, api, series, at, starts_at):
    session = SessionFactory(series=series, starts_at=at(3))
    response = api(front_desk).post(
        f"/api/v1/sessions/{session.id}/reschedule/", {"starts_at": starts_at}
    )
    assert_invalid(response, "starts_at")
    session.refresh_from_db()
    assert session.starts_at == at(3)


@pytest.mark.django_db
@pytest.mark.parametrize("first_starts_at", BAD_TIMESTAMPS[:2])
def test_series_plan_refuses_a_hostile_first_starts_at(
    front_desk, provider, api, series, first_starts_at
):
    response = api(front_desk).post(
        f"/api/v1/series/{series.id}/plan/",
        {"provider": str(provider.id), "first_starts_at": first_starts_at},
    )
    assert_invalid(response, "first_starts_at")


@pytest.mark.django_db
@pytest.mark.parametrize("moment", BAD_TIMESTAMPS[:2])
def test_time_off_refuses_hostile_bounds(admin, provider, api, at, moment):
    response = api(admin).post(
        "/api/v1/time-off/",
        {"provider": str(provider.id), "starts_at": at(3).isoformat(), "ends_at": moment},
    )
    assert_invalid(response, "ends_at")


@pytest.mark.django_db
@pytest.mark.parametrize("day", BAD_DATES)
def test_the_day_view_refuses_a_hostile_date(front_desk, api, day):
    assert_invalid(api(front_desk).get("/api/v1/sessions/", {"date": day}), "date")


@pytest.mark.django_db
@pytest.mark.parametrize("param", ["from", "to"])
@pytest.mark.parametrize("day", BAD_DATES[:3])
def test_time_off_filters_refuse_a_hostile_date(front_desk, api, param, day):
    assert_invalid(api(front_desk).get("/api/v1/time-off/", {param: day}), param)


@pytest.mark.django_db
@pytest.mark.parametrize("day", BAD_DATES[:4])
def test_availability_refuses_a_hostile_date(front_desk, provider, api, day):
    response = api(front_desk).get(
        "/api/v1/availability/", {"provider": str(provider.id), "from": day}
    )
    assert_invalid(response, "from")


@pytest.mark.django_db
def test_the_last_and_first_days_in_range_are_answered(front_desk, api):
    client = api(front_desk)
    for day in ("2199-12-31", "1900-01-01"):
        response = client.get("/api/v1/sessions/", {"date": day})
        assert (response.status_code, response.json()["results"]) == (200, [])
