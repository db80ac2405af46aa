"""Working hours and time off: what they accept, and the bookings they refuse."""

from datetime import UTC, datetime
from unittest.mock import ANY

import pytest

from clinic.models import AuditEvent
from scheduling.models import Session, TimeOff, WorkingInterval
from tests.factories import SessionFactory
from tests.helpers import assert_problem

WEEKDAYS_9_TO_5 = [{"weekday": d, "starts": "09:00", "ends": "17:00"} for d in range(5)]


def utc(moment):
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def hours_url(staff):
    return f"/api/v1/staff/{staff.id}/working-hours/"


def booking(series, provider, starts_at, **extra):
    return {
        "series": str(series.id),
        "provider": str(provider.id),
        "starts_at": starts_at.isoformat(),
        **extra,
    }


def next_weekday(at, weekday, hour=10, minute=0, weeks=1):
    """A local time on the given weekday, at least `weeks` weeks from today."""
    moment = at(7 * weeks, hour, minute)
    return at(7 * weeks + (weekday - moment.weekday()) % 7, hour, minute)


# --- Working hours ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_working_hours_put_and_get(api, admin, provider, front_desk):
    intervals = [
        {"weekday": 4, "starts": "13:00", "ends": "24:00"},
        {"weekday": 0, "starts": "09:00", "ends": "12:30"},
        {"weekday": 0, "starts": "13:30", "ends": "17:00"},
    ]
    response = api(admin).put(hours_url(provider), {"intervals": intervals}, format="json")
    expected = {"intervals": [intervals[1], intervals[2], intervals[0]]}
    assert response.status_code == 200, response.content
    assert response.json() == expected
    assert api(front_desk).get(hours_url(provider)).json() == expected
    assert AuditEvent.objects.filter(action="working_hours.set").count() == 1
    # Replacing with none lifts every limit.
    response = api(admin).put(hours_url(provider), {"intervals": []}, format="json")
    assert response.json() == {"intervals": []}
    assert WorkingInterval.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "intervals",
    [
        [{"weekday": 0, "starts": "10:00", "ends": "10:00"}],
        [{"weekday": 0, "starts": "11:00", "ends": "10:00"}],
        [
            {"weekday": 2, "starts": "09:00", "ends": "17:00"},
            {"weekday": 2, "starts": "12:00", "ends": "13:00"},
        ],
        [
            {"weekday": 2, "starts": "09:00", "ends": "17:00"},
            {"weekday": 2, "starts": "10:00", "ends": "11:00"},
            {"weekday": 2, "starts": "12:00", "ends": "13:00"},
        ],
        [{"weekday": 7, "starts": "09:00", "ends": "10:00"}],
        [{"weekday": 1, "starts": "9:00", "ends": "10:00"}],
        [{"weekday": 1, "starts": "24:00", "ends": "24:00"}],
        [{"weekday": 1, "starts": "09:00", "ends": "24:30"}],
        [{"weekday": 1, "starts": "09:00"}],
    ],
)
def test_bad_working_hours_are_400_and_change_nothing(api, admin, provider, intervals):
    api(admin).put(hours_url(provider), {"intervals": WEEKDAYS_9_TO_5}, format="json")
    response = api(admin).put(hours_url(provider), {"intervals": intervals}, format="json")
    assert_problem(response, 400, "invalid", errors=ANY)
    assert WorkingInterval.objects.count() == 5


@pytest.mark.django_db
def test_working_hours_roles_and_scoping(api, staff_by_role, provider, other_clinic, make_user):
    body = {"intervals": WEEKDAYS_9_TO_5}
    for role, user in staff_by_role.items():
        response = api(user).put(hours_url(provider), body, format="json")
        assert response.status_code == (200 if role == "admin" else 403), role
        assert api(user).get(hours_url(provider)).status_code == 200
    stranger = make_user("provider", other_clinic)
    assert_problem(api(staff_by_role["admin"]).get(hours_url(stranger)), 404, "not_found")
    assert_problem(
        api(staff_by_role["admin"]).put(hours_url(stranger), body, format="json"), 404, "not_found"
    )
    front_desk = staff_by_role["front_desk"]
    assert_problem(
        api(staff_by_role["admin"]).put(hours_url(front_desk), body, format="json"),
        400,
        "invalid",
        errors=ANY,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("hour", "minute", "duration", "expected"),
    [
        (9, 0, 60, 201),
        (16, 0, 60, 201),
        (16, 15, 60, 409),
        (8, 45, 60, 409),
        (12, 0, 60, 409),  # the lunch gap
        (11, 30, 60, 201),
    ],
)
def test_bookings_only_inside_working_hours(
    api, admin, front_desk, provider, series, at, hour, minute, duration, expected
):
    monday = [
        {"weekday": 0, "starts": "09:00", "ends": "12:30"},
        {"weekday": 0, "starts": "13:00", "ends": "17:00"},
    ]
    api(admin).put(hours_url(provider), {"intervals": monday}, format="json")
    starts_at = next_weekday(at, 0, hour, minute)
    response = api(front_desk).post(
        "/api/v1/sessions/", booking(series, provider, starts_at, duration_minutes=duration)
    )
    if expected == 201:
        assert response.status_code == 201, response.content
    else:
        assert_problem(response, 409, "provider_unavailable")


@pytest.mark.django_db
def test_a_day_without_hours_is_refused_and_a_provider_without_hours_is_free(
    api, admin, front_desk, provider, make_provider, series, make_series, make_patient, at
):
    api(admin).put(hours_url(provider), {"intervals": WEEKDAYS_9_TO_5}, format="json")
    sunday = next_weekday(at, 6, 10)
    assert_problem(
        api(front_desk).post("/api/v1/sessions/", booking(series, provider, sunday)),
        409,
        "provider_unavailable",
    )
    other = make_series(patient=make_patient())
    response = api(front_desk).post("/api/v1/sessions/", booking(other, make_provider(), sunday))
    assert response.status_code == 201


@pytest.mark.django_db
def test_reschedule_outside_working_hours_is_refused(api, admin, front_desk, provider, series, at):
    api(admin).put(hours_url(provider), {"intervals": WEEKDAYS_9_TO_5}, format="json")
    client = api(front_desk)
    session = client.post(
        "/api/v1/sessions/", booking(series, provider, next_weekday(at, 1, 10))
    ).json()
    response = client.post(
        f"/api/v1/sessions/{session['id']}/reschedule/",
        {"starts_at": next_weekday(at, 1, 18).isoformat()},
    )
    assert_problem(response, 409, "provider_unavailable")


@pytest.mark.django_db
def test_working_hours_keep_their_wall_clock_across_dst(api, admin, front_desk, provider, clinic):
    """New York: 9:00-17:00 is 14:00-22:00 UTC in winter and 13:00-21:00 UTC in summer."""
    import time_machine

    from tests.factories import PatientFactory, ScreeningFactory, SeriesFactory

    with time_machine.travel(datetime(2026, 2, 20, 12, tzinfo=UTC), tick=False):
        patient = PatientFactory(clinic=clinic)
        ScreeningFactory(patient=patient, screened_by=front_desk)
        before = SeriesFactory(patient=patient, created_by=front_desk, planned_sessions=6)
        api(admin).put(hours_url(provider), {"intervals": WEEKDAYS_9_TO_5}, format="json")
        client = api(front_desk)
        # Friday 6 March (EST): 09:00 local = 14:00Z; 13:00Z is 08:00 local.
        winter_ok = datetime(2026, 3, 6, 14, tzinfo=UTC)
        winter_early = datetime(2026, 3, 6, 13, tzinfo=UTC)
        # Monday 30 March (EDT): 09:00 local = 13:00Z.
        summer_ok = datetime(2026, 3, 30, 13, tzinfo=UTC)
        summer_late = datetime(2026, 3, 30, 20, 30, tzinfo=UTC)  # 16:30-17:30 local
        assert_problem(
            client.post("/api/v1/sessions/", booking(before, provider, winter_early)),
            409,
            "provider_unavailable",
        )
        assert (
            client.post("/api/v1/sessions/", booking(before, provider, winter_ok)).status_code
            == 201
        )
        assert_problem(
            client.post("/api/v1/sessions/", booking(before, provider, summer_late)),
            409,
            "provider_unavailable",
        )
        assert (
            client.post("/api/v1/sessions/", booking(before, provider, summer_ok)).status_code
            == 201
        )


# --- Time off ---------------------------------------------------------------------------------


def time_off_body(starts_at, ends_at, provider=None, room=None, reason="Training"):
    body = {"starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat(), "reason": reason}
    if provider is not None:
        body["provider"] = str(provider.id)
    if room is not None:
        body["room"] = str(room.id)
    return body


@pytest.mark.django_db
def test_time_off_create_list_delete(api, admin, front_desk, provider, room, at):
    client = api(admin)
    response = client.post(
        "/api/v1/time-off/", time_off_body(at(3, 9), at(3, 13), provider=provider)
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created == {
        "id": created["id"],
        "provider": str(provider.id),
        "room": None,
        "starts_at": utc(at(3, 9)),
        "ends_at": utc(at(3, 13)),
        "reason": "Training",
    }
    for_room = client.post("/api/v1/time-off/", time_off_body(at(4, 0), at(5, 0), room=room))
    assert for_room.status_code == 201
    listed = api(front_desk).get("/api/v1/time-off/").json()
    assert listed == {"results": [created, for_room.json()], "next": None, "previous": None}
    assert client.delete(f"/api/v1/time-off/{created['id']}/").status_code == 204
    assert TimeOff.objects.count() == 1
    assert AuditEvent.objects.filter(action__startswith="time_off.").count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        {"provider": None},  # neither
        {"room": "ROOM"},  # both
        {"ends_at": "STARTS"},
        {"ends_at": "BEFORE"},
        {"starts_at": "2026-03-01T10:00:00"},  # no offset
        {"provider": "FRONT_DESK"},
    ],
)
def test_bad_time_off_is_400(api, admin, front_desk, provider, room, at, change):
    body = time_off_body(at(3, 9), at(3, 13), provider=provider)
    for key, value in change.items():
        body[key] = {
            "ROOM": str(room.id),
            "STARTS": body["starts_at"],
            "BEFORE": at(3, 8).isoformat(),
            "FRONT_DESK": str(front_desk.id),
        }.get(value, value)
    assert_problem(
        api(admin).post("/api/v1/time-off/", body, format="json"), 400, "invalid", errors=ANY
    )
    assert TimeOff.objects.count() == 0


@pytest.mark.django_db
def test_time_off_over_active_sessions_is_409_with_their_ids(
    api, admin, provider, series, make_series, make_patient, room, at
):
    first = SessionFactory(series=series, provider=provider, starts_at=at(3, 10))
    second = SessionFactory(
        series=make_series(patient=make_patient()),
        provider=provider,
        starts_at=at(3, 12),
        room=room,
    )
    SessionFactory(
        series=make_series(patient=make_patient()),
        provider=provider,
        starts_at=at(3, 14),
        status="cancelled",
    )
    client = api(admin)
    response = client.post(
        "/api/v1/time-off/", time_off_body(at(3, 9), at(3, 15), provider=provider)
    )
    body = assert_problem(response, 409, "sessions_conflict")
    assert body["sessions"] == [str(first.id), str(second.id)]
    body = assert_problem(
        client.post("/api/v1/time-off/", time_off_body(at(3, 9), at(3, 15), room=room)),
        409,
        "sessions_conflict",
    )
    assert body["sessions"] == [str(second.id)]
    # Touching ranges do not overlap.
    assert (
        client.post(
            "/api/v1/time-off/", time_off_body(at(3, 11), at(3, 12), provider=provider)
        ).status_code
        == 201
    )
    assert TimeOff.objects.count() == 1


@pytest.mark.django_db
def test_booking_into_time_off_is_refused_with_the_resource(
    api, admin, front_desk, provider, make_provider, series, room, at
):
    client = api(admin)
    client.post("/api/v1/time-off/", time_off_body(at(3, 9), at(3, 12), provider=provider))
    client.post("/api/v1/time-off/", time_off_body(at(4, 9), at(4, 12), room=room))
    desk = api(front_desk)
    assert_problem(
        desk.post("/api/v1/sessions/", booking(series, provider, at(3, 11, 30))),
        409,
        "provider_unavailable",
    )
    assert_problem(
        desk.post(
            "/api/v1/sessions/", booking(series, make_provider(), at(4, 8, 30), room=str(room.id))
        ),
        409,
        "room_unavailable",
    )
    # Right after it ends: free.
    session = desk.post("/api/v1/sessions/", booking(series, provider, at(3, 12)))
    assert session.status_code == 201
    moved = desk.post(
        f"/api/v1/sessions/{session.json()['id']}/reschedule/",
        {"starts_at": at(3, 8, 30).isoformat()},
    )
    assert_problem(moved, 409, "provider_unavailable")
    assert Session.objects.count() == 1


@pytest.mark.django_db
def test_time_off_filters(api, admin, provider, make_provider, room, at, clinic):
    other = make_provider()
    client = api(admin)
    ids = {}
    for name, body in {
        "p_day3": time_off_body(at(3, 9), at(3, 12), provider=provider),
        "p_day5": time_off_body(at(5, 23), at(6, 1), provider=provider),
        "o_day4": time_off_body(at(4, 9), at(4, 12), provider=other),
        "r_day4": time_off_body(at(4, 0), at(4, 23), room=room),
    }.items():
        ids[name] = client.post("/api/v1/time-off/", body).json()["id"]

    def listed(query):
        response = client.get(f"/api/v1/time-off/?{query}")
        assert response.status_code == 200, response.content
        return [item["id"] for item in response.json()["results"]]

    day = lambda n: at(n).date().isoformat()  # noqa: E731
    assert listed(f"provider={provider.id}") == [ids["p_day3"], ids["p_day5"]]
    assert listed(f"room={room.id}") == [ids["r_day4"]]
    assert listed(f"from={day(4)}&to={day(4)}") == [ids["r_day4"], ids["o_day4"]]
    assert listed(f"from={day(6)}") == [ids["p_day5"]]
    assert listed(f"to={day(3)}") == [ids["p_day3"]]
    assert_problem(client.get("/api/v1/time-off/?from=03/04/2026"), 400, "invalid", errors=ANY)


@pytest.mark.django_db
def test_time_off_roles_and_scoping(api, staff_by_role, provider, other_clinic, at, make_user):
    admin = staff_by_role["admin"]
    made = (
        api(admin)
        .post("/api/v1/time-off/", time_off_body(at(3, 9), at(3, 12), provider=provider))
        .json()
    )
    for role, user in staff_by_role.items():
        assert api(user).get("/api/v1/time-off/").status_code == 200
        if role != "admin":
            response = api(user).post(
                "/api/v1/time-off/", time_off_body(at(5, 9), at(5, 12), provider=provider)
            )
            assert_problem(response, 403, "permission_denied")
            assert_problem(
                api(user).delete(f"/api/v1/time-off/{made['id']}/"), 403, "permission_denied"
            )
    stranger_admin = make_user("admin", other_clinic)
    assert_problem(api(stranger_admin).get(f"/api/v1/time-off/{made['id']}/"), 404, "not_found")
    assert_problem(api(stranger_admin).delete(f"/api/v1/time-off/{made['id']}/"), 404, "not_found")
    assert api(stranger_admin).get("/api/v1/time-off/").json()["results"] == []
    response = api(stranger_admin).post(
        "/api/v1/time-off/", time_off_body(at(5, 9), at(5, 12), provider=provider)
    )
    assert_problem(response, 400, "invalid", errors=ANY)


@pytest.mark.django_db
@pytest.mark.parametrize("count", [1, 3])
def test_working_hours_query_count(api, admin, provider, count, django_assert_num_queries):
    intervals = [{"weekday": d, "starts": "09:00", "ends": "17:00"} for d in range(count)]
    client = api(admin)
    client.put(hours_url(provider), {"intervals": intervals}, format="json")
    with django_assert_num_queries(3):
        response = client.get(hours_url(provider))
    assert len(response.json()["intervals"]) == count
