"""The provider's calendar feed: a secret URL, RFC 5545 via icalendar, initials only."""

from datetime import UTC, timedelta

import icalendar
import pytest
from rest_framework.test import APIClient

from clinic.models import Role
from scheduling.models import CalendarFeed
from tests.factories import SessionFactory
from tests.helpers import assert_problem


def feed_path(url):
    return url.split("testserver", 1)[1]


@pytest.mark.django_db
def test_the_feed_has_the_providers_sessions_with_initials_only(
    api, admin, provider, make_series, make_patient, make_provider, room, at
):
    patient = make_patient(first_name="Jane", last_name="Doe")
    series = make_series(patient=patient, planned_sessions=4)
    shown = [
        SessionFactory(series=series, provider=provider, starts_at=at(-20, 9), status="completed"),
        SessionFactory(series=series, provider=provider, starts_at=at(10, 9), room=room),
        SessionFactory(series=series, provider=provider, starts_at=at(40, 9), status="checked_in"),
    ]
    SessionFactory(series=series, provider=provider, starts_at=at(-40, 9), status="completed")
    SessionFactory(series=series, provider=provider, starts_at=at(70, 9), status="cancelled")
    SessionFactory(
        series=make_series(patient=make_patient()), provider=make_provider(), starts_at=at(3)
    )

    created = api(admin).post(f"/api/v1/staff/{provider.id}/calendar-feed/")
    assert created.status_code == 201, created.content
    url = created.json()["url"]
    assert set(created.json()) == {"url"}
    response = APIClient().get(feed_path(url), HTTP_ACCEPT="text/calendar")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    text = response.content.decode()
    assert "Jane" not in text and "Doe" not in text
    assert "acne" not in text.lower()

    calendar = icalendar.Calendar.from_ical(response.content)
    events = calendar.walk("VEVENT")
    assert [str(e["UID"]) for e in events] == [str(s.id) for s in shown]
    assert [str(e["SUMMARY"]) for e in events] == [
        "Session 2 · No room · J.D.",
        "Session 3 · " + room.name + " · J.D.",
        "Session 4 · No room · J.D.",
    ]
    first = events[0]
    assert first.decoded("DTSTART") == shown[0].starts_at.astimezone(UTC)
    assert first.decoded("DTSTART").tzinfo is not None
    assert first.decoded("DTSTART").utcoffset() == timedelta(0)
    assert "Z" in first["DTSTART"].to_ical().decode()


@pytest.mark.django_db
def test_rotating_invalidates_the_older_url_and_only_a_hash_is_kept(api, admin, provider):
    first = api(provider).post(f"/api/v1/staff/{provider.id}/calendar-feed/").json()["url"]
    second = api(admin).post(f"/api/v1/staff/{provider.id}/calendar-feed/").json()["url"]
    assert first != second
    assert_problem(APIClient().get(feed_path(first)), 404, "not_found")
    assert APIClient().get(feed_path(second)).status_code == 200
    assert_problem(APIClient().get("/api/v1/calendar-feeds/not-a-secret/"), 404, "not_found")
    stored = CalendarFeed.objects.get()
    secret = feed_path(second).rstrip("/").rsplit("/", 1)[1]
    assert secret not in stored.secret_hash
    assert len(stored.secret_hash) == 64


@pytest.mark.django_db
def test_who_may_make_a_feed(api, staff_by_role, provider, make_user, clinic, other_clinic):
    other_provider = make_user(Role.PROVIDER, clinic)
    for role, user in staff_by_role.items():
        response = api(user).post(f"/api/v1/staff/{other_provider.id}/calendar-feed/")
        assert response.status_code == (201 if role == "admin" else 403), role
    # Themself: yes (auditors never write).
    assert api(provider).post(f"/api/v1/staff/{provider.id}/calendar-feed/").status_code == 201
    front_desk = staff_by_role["front_desk"]
    assert api(front_desk).post(f"/api/v1/staff/{front_desk.id}/calendar-feed/").status_code == 201
    stranger = make_user(Role.ADMIN, other_clinic)
    assert_problem(
        api(stranger).post(f"/api/v1/staff/{provider.id}/calendar-feed/"), 404, "not_found"
    )
