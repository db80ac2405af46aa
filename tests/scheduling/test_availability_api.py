"""GET /availability/: the free slots are exactly the times booking accepts."""

from datetime import UTC, datetime, timedelta
from unittest.mock import ANY

import pytest
import time_machine

from tests.factories import PatientFactory, ScreeningFactory, SeriesFactory, SessionFactory
from tests.helpers import assert_problem


def utc(moment):
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def slots_of(client, **query):
    response = client.get("/api/v1/availability/", query)
    assert response.status_code == 200, response.content
    return [(s["starts_at"], s["ends_at"]) for s in response.json()["slots"]]


def set_hours(api, admin, provider, intervals):
    response = api(admin).put(
        f"/api/v1/staff/{provider.id}/working-hours/", {"intervals": intervals}, format="json"
    )
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_slots_on_the_grid_inside_hours_around_sessions_and_time_off(
    api, admin, front_desk, provider, series, at, make_series, make_patient
):
    day = at(7).date()
    weekday = day.weekday()
    set_hours(api, admin, provider, [{"weekday": weekday, "starts": "09:00", "ends": "13:00"}])
    SessionFactory(
        series=make_series(patient=make_patient()),
        provider=provider,
        starts_at=at(7, 10),
    )
    api(admin).post(
        "/api/v1/time-off/",
        {
            "provider": str(provider.id),
            "starts_at": at(7, 12, 0).isoformat(),
            "ends_at": at(7, 12, 30).isoformat(),
        },
    )
    found = slots_of(
        api(front_desk),
        provider=provider.id,
        **{"from": day.isoformat()},
        duration_minutes=30,
        step_minutes=30,
    )
    expected = [(9, 0), (9, 30), (11, 0), (11, 30), (12, 30)]
    assert found == [
        (utc(at(7, h, m)), utc(at(7, h, m) + timedelta(minutes=30))) for h, m in expected
    ]


@pytest.mark.django_db
def test_every_slot_books_and_a_non_slot_does_not(
    api, admin, front_desk, provider, series, at, make_series, make_patient, room, make_provider
):
    day = at(5).date()
    set_hours(
        api, admin, provider, [{"weekday": day.weekday(), "starts": "08:00", "ends": "18:00"}]
    )
    # The room is taken by someone else's session at 11:00-12:00.
    SessionFactory(
        series=make_series(patient=make_patient()),
        provider=make_provider(),
        room=room,
        starts_at=at(5, 11),
    )
    client = api(front_desk)
    query = {"provider": provider.id, "room": room.id, "from": day.isoformat()}
    found = {start for start, _end in slots_of(client, **query)}
    grid = [at(5, 0) + timedelta(minutes=15 * n) for n in range(96)]
    assert len(found) == len([g for g in grid if at(5, 8) <= g <= at(5, 17)]) - 7
    for moment in grid[::5]:
        fresh = make_series(patient=make_patient())
        response = client.post(
            "/api/v1/sessions/",
            {
                "series": str(fresh.id),
                "provider": str(provider.id),
                "room": str(room.id),
                "starts_at": moment.isoformat(),
            },
        )
        assert (response.status_code == 201) == (utc(moment) in found), (moment, response.json())
        if response.status_code == 201:
            # Free it again so later grid points are judged on the same book.
            client.post(f"/api/v1/sessions/{response.json()['id']}/cancel/")


@pytest.mark.django_db
def test_with_series_the_patient_and_interval_rule_count(
    api, front_desk, provider, make_provider, series, at
):
    # The patient has a session elsewhere on day 30 at 10:00 with another provider.
    SessionFactory(series=series, provider=make_provider(), starts_at=at(30, 10))
    client = api(front_desk)
    day30 = slots_of(client, provider=provider.id, **{"from": at(30).date().isoformat()})
    assert (utc(at(30, 10)), utc(at(30, 11))) in day30  # the provider alone is free
    with_series = slots_of(
        client,
        provider=provider.id,
        series=series.id,
        **{"from": at(5).date().isoformat()},
        to=at(35).date().isoformat(),
    )
    days = sorted(
        {datetime.fromisoformat(s).astimezone(at(0).tzinfo).date() for s, _ in with_series}
    )
    # Sessions of a series are at least 21 days apart: nothing from day 10 to day 50.
    assert days == [at(n).date() for n in range(5, 10)]


@pytest.mark.django_db
def test_not_in_the_past(api, front_desk, provider, clinic, at):
    now = at(0, 14, 7)
    with time_machine.travel(now, tick=False):
        found = slots_of(api(front_desk), provider=provider.id, **{"from": now.date().isoformat()})
    assert found[0] == (utc(at(0, 14, 15)), utc(at(0, 15, 15)))
    assert found[-1] == (utc(at(0, 23, 45)), utc(at(1, 0, 45)))


@pytest.mark.django_db
def test_the_grid_runs_from_local_midnight_on_dst_days(api, front_desk, provider, clinic):
    """New York, 8 March 2026 (23 hours) and 1 November 2026 (25 hours)."""
    with time_machine.travel(datetime(2026, 3, 1, tzinfo=UTC), tick=False):
        spring = slots_of(
            api(front_desk), provider=provider.id, **{"from": "2026-03-08"}, step_minutes=60
        )
        autumn = slots_of(
            api(front_desk), provider=provider.id, **{"from": "2026-11-01"}, step_minutes=60
        )
    assert len(spring) == 23
    assert spring[0][0] == "2026-03-08T05:00:00Z"
    assert spring[2][0] == "2026-03-08T07:00:00Z"  # 03:00 EDT, right after 01:00 EST
    assert len(autumn) == 25
    assert autumn[0][0] == "2026-11-01T04:00:00Z"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        {},
        {"from": "2026-12-01"},
        {"provider": "PROVIDER"},
        {"provider": "PROVIDER", "from": "01/12/2026"},
        {"provider": "PROVIDER", "from": "FROM", "to": "TO+31"},
        {"provider": "PROVIDER", "from": "FROM", "to": "FROM-1"},
        {"provider": "PROVIDER", "from": "FROM", "duration_minutes": 5},
        {"provider": "PROVIDER", "from": "FROM", "step_minutes": 0},
        {"provider": "FRONT_DESK", "from": "FROM"},
        {"provider": "PROVIDER", "from": "FROM", "room": "not-a-uuid"},
    ],
)
def test_bad_queries_are_400(api, front_desk, provider, at, query):
    today = at(0).date()
    values = {
        "PROVIDER": str(provider.id),
        "FRONT_DESK": str(front_desk.id),
        "FROM": today.isoformat(),
        "TO+31": (today + timedelta(days=31)).isoformat(),
        "FROM-1": (today - timedelta(days=1)).isoformat(),
    }
    params = {key: values.get(value, value) for key, value in query.items()}
    assert_problem(api(front_desk).get("/api/v1/availability/", params), 400, "invalid", errors=ANY)


@pytest.mark.django_db
def test_thirty_one_days_is_the_limit_and_to_is_inclusive(api, front_desk, provider, at):
    today = at(1).date()
    found = slots_of(
        api(front_desk),
        provider=provider.id,
        step_minutes=1440,
        **{"from": today.isoformat(), "to": (today + timedelta(days=30)).isoformat()},
    )
    assert len(found) == 31


@pytest.mark.django_db
def test_roles_and_another_clinics_provider(
    api, staff_by_role, provider, other_clinic, make_user, at
):
    query = {"provider": provider.id, "from": at(1).date().isoformat()}
    for user in staff_by_role.values():
        assert api(user).get("/api/v1/availability/", query).status_code == 200
    stranger = make_user("admin", other_clinic)
    assert_problem(api(stranger).get("/api/v1/availability/", query), 400, "invalid", errors=ANY)


@pytest.mark.django_db
@pytest.mark.parametrize("size", [1, 3])
def test_query_count_does_not_grow_with_days_slots_or_sessions(
    api, admin, front_desk, provider, clinic, at, room, size, django_assert_num_queries
):
    set_hours(
        api, admin, provider, [{"weekday": d, "starts": "08:00", "ends": "18:00"} for d in range(7)]
    )
    patient = PatientFactory(clinic=clinic)
    ScreeningFactory(patient=patient, screened_by=front_desk)
    series = SeriesFactory(patient=patient, created_by=front_desk, planned_sessions=6)
    for n in range(size):
        SessionFactory(series=series, provider=provider, starts_at=at(2 + n, 9))
    client = api(front_desk)
    query = {
        "provider": provider.id,
        "room": room.id,
        "series": series.id,
        "from": at(1).date().isoformat(),
        "to": at(10 * size).date().isoformat(),
    }
    # auth (the token, with its user and their clinic), provider, room, series, working hours,
    # time off, sessions, the series' sessions, the latest screening.
    with django_assert_num_queries(9):
        response = client.get("/api/v1/availability/", query)
    assert response.status_code == 200
