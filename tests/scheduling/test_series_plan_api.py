"""POST /series/{id}/plan/ and /book/: the rest of a series at once, each session checked like
a single booking, all or nothing."""

from datetime import UTC, datetime, timedelta
from unittest.mock import ANY
from zoneinfo import ZoneInfo

import pytest
import time_machine

from clinic.models import AuditEvent
from scheduling.models import Session
from tests.factories import PatientFactory, ScreeningFactory, SeriesFactory, SessionFactory
from tests.helpers import assert_problem

NEW_YORK = ZoneInfo("America/New_York")


def utc(moment):
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def plan_body(provider, first_starts_at, **extra):
    return {"provider": str(provider.id), "first_starts_at": first_starts_at.isoformat(), **extra}


@pytest.fixture
def six(make_series):
    return make_series(planned_sessions=6, interval_days=30)


def starts(body):
    return [s["starts_at"] for s in body["sessions"]]


@pytest.mark.django_db
def test_plan_writes_nothing_and_book_writes_exactly_the_plan(
    api, front_desk, provider, six, room, at
):
    client = api(front_desk)
    body = plan_body(provider, at(2, 10), room=str(room.id), duration_minutes=45)
    planned = client.post(f"/api/v1/series/{six.id}/plan/", body)
    assert planned.status_code == 200, planned.content
    assert Session.objects.count() == 0
    expected_starts = [at(2 + 30 * n, 10) for n in range(6)]
    flags = [[] if n < 3 else ["screening_expired"] for n in range(6)]  # valid 90 days
    assert planned.json() == {
        "sessions": [
            {
                "number": n + 1,
                "starts_at": utc(moment),
                "ends_at": utc(moment + timedelta(minutes=45)),
                "flags": flags[n],
            }
            for n, moment in enumerate(expected_starts)
        ]
    }
    booked = client.post(f"/api/v1/series/{six.id}/book/", body)
    assert booked.status_code == 201, booked.content
    sessions = booked.json()["sessions"]
    assert [s["starts_at"] for s in sessions] == starts(planned.json())
    assert [s["number"] for s in sessions] == [1, 2, 3, 4, 5, 6]
    assert [s["flags"] for s in sessions] == flags
    assert {(s["room"], s["provider"], s["status"], s["duration_minutes"]) for s in sessions} == {
        (str(room.id), str(provider.id), "booked", 45)
    }
    assert set(sessions[0]) >= {"id", "series", "patient", "ends_at"}
    assert Session.objects.filter(series=six).count() == 6
    assert AuditEvent.objects.filter(action="session.book").count() == 6
    assert_problem(client.post(f"/api/v1/series/{six.id}/book/", body), 409, "series_full")


@pytest.mark.django_db
def test_only_the_remaining_sessions_are_planned(api, front_desk, provider, series, at):
    SessionFactory(series=series, provider=provider, starts_at=at(1, 9), status="completed")
    body = (
        api(front_desk)
        .post(f"/api/v1/series/{series.id}/plan/", plan_body(provider, at(31, 9)))
        .json()
    )
    assert [(s["number"], s["starts_at"]) for s in body["sessions"]] == [
        (2, utc(at(31, 9))),
        (3, utc(at(61, 9))),
    ]


@pytest.mark.django_db
def test_one_blocked_date_fails_naming_the_session_and_writes_nothing(
    api, admin, front_desk, provider, six, at
):
    # Time off over the fourth session's date.
    api(admin).post(
        "/api/v1/time-off/",
        {
            "provider": str(provider.id),
            "starts_at": at(92, 0).isoformat(),
            "ends_at": at(93, 0).isoformat(),
        },
    )
    client = api(front_desk)
    body = plan_body(provider, at(2, 10))
    for step in ("plan", "book"):
        response = client.post(f"/api/v1/series/{six.id}/{step}/", body)
        problem = assert_problem(response, 409, "provider_unavailable", errors=ANY)
        assert problem["errors"] == {"sessions": {"4": ["provider_unavailable"]}}
    assert Session.objects.count() == 0

    # With a window the fourth moves to the earliest free 15-minute slot after it: the end of
    # the time off (local midnight); the later ones follow from where it landed.
    moved = client.post(f"/api/v1/series/{six.id}/book/", {**body, "window_days": 2})
    assert moved.status_code == 201, moved.content
    assert starts(moved.json()) == [
        utc(at(2, 10)),
        utc(at(32, 10)),
        utc(at(62, 10)),
        utc(at(93, 0)),
        utc(at(123, 0)),
        utc(at(153, 0)),
    ]


@pytest.mark.django_db
def test_window_moves_into_working_hours_on_the_next_day(
    api, admin, front_desk, provider, make_series, clinic
):
    with time_machine.travel(datetime(2026, 1, 2, 12, tzinfo=UTC), tick=False):
        series = make_series(planned_sessions=3, interval_days=28)
        hours = [{"weekday": d, "starts": "09:00", "ends": "17:00"} for d in range(5)]
        api(admin).put(
            f"/api/v1/staff/{provider.id}/working-hours/", {"intervals": hours}, format="json"
        )
        # Monday 5 Jan 10:00, +28 days = Monday 2 Feb; make Monday 2 Feb a day off.
        api(admin).post(
            "/api/v1/time-off/",
            {
                "provider": str(provider.id),
                "starts_at": "2026-02-02T00:00:00-05:00",
                "ends_at": "2026-02-03T00:00:00-05:00",
            },
        )
        first = datetime(2026, 1, 5, 10, tzinfo=NEW_YORK)
        client = api(front_desk)
        response = client.post(
            f"/api/v1/series/{series.id}/plan/", plan_body(provider, first, window_days=3)
        )
        assert response.status_code == 200, response.content
        assert starts(response.json()) == [
            "2026-01-05T15:00:00Z",
            "2026-02-03T14:00:00Z",  # Tuesday 09:00, the first bookable slot after Monday 10:00
            "2026-03-03T14:00:00Z",  # 28 days after it was placed
        ]


@pytest.mark.django_db
def test_a_series_across_dst_keeps_its_local_time(api, front_desk, provider, clinic):
    with time_machine.travel(datetime(2026, 2, 1, 12, tzinfo=UTC), tick=False):
        patient = PatientFactory(clinic=clinic)
        ScreeningFactory(patient=patient, screened_by=front_desk)
        series = SeriesFactory(
            patient=patient, created_by=front_desk, planned_sessions=4, interval_days=30
        )
        first = datetime(2026, 2, 10, 10, tzinfo=NEW_YORK)  # EST
        response = api(front_desk).post(
            f"/api/v1/series/{series.id}/book/", plan_body(provider, first)
        )
        assert response.status_code == 201, response.content
        local = [datetime.fromisoformat(s).astimezone(NEW_YORK) for s in starts(response.json())]
        assert [(m.date().isoformat(), m.hour, m.minute) for m in local] == [
            ("2026-02-10", 10, 0),
            ("2026-03-12", 10, 0),  # EDT from 8 March: 14:00Z instead of 15:00Z
            ("2026-04-11", 10, 0),
            ("2026-05-11", 10, 0),
        ]
        assert starts(response.json())[:2] == ["2026-02-10T15:00:00Z", "2026-03-12T14:00:00Z"]


@pytest.mark.django_db
def test_every_single_booking_rule_applies_to_each_session(
    api, front_desk, provider, make_provider, make_series, make_patient, six, at, clinic
):
    client = api(front_desk)
    # The patient is busy at the third session's time with another provider's session.
    other = make_series(patient=six.patient)
    SessionFactory(series=other, provider=make_provider(), starts_at=at(62, 10))
    problem = assert_problem(
        client.post(f"/api/v1/series/{six.id}/book/", plan_body(provider, at(2, 10))),
        409,
        "patient_unavailable",
        errors=ANY,
    )
    assert problem["errors"] == {"sessions": {"3": ["patient_unavailable"]}}

    # Eligibility: a screening with a contraindication blocks every session.
    patient = make_patient()
    ScreeningFactory(
        patient=patient,
        screened_by=front_desk,
        eligible=False,
        contraindications=["pregnant_or_nursing"],
        eligible_from=None,
    )
    blocked = make_series(patient=patient)
    problem = assert_problem(
        client.post(f"/api/v1/series/{blocked.id}/plan/", plan_body(provider, at(2, 10))),
        422,
        "patient_not_eligible",
        errors={"sessions": {"1": ["patient_not_eligible"]}},
        reasons=["pregnant_or_nursing"],
    )

    # Interval rule: a series every 10 days when the clinic's minimum is 21.
    clinic.min_interval_days = 5
    clinic.save()
    tight = make_series(patient=make_patient(), interval_days=10)
    clinic.min_interval_days = 21
    clinic.save()
    assert_problem(
        client.post(f"/api/v1/series/{tight.id}/plan/", plan_body(provider, at(2, 10))),
        422,
        "interval_too_short",
        errors={"sessions": {"2": ["interval_too_short"]}},
    )
    assert Session.objects.filter(series__in=[six, blocked, tight]).count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        {"first_starts_at": "PAST"},
        {"first_starts_at": "2026-03-01T10:00:00"},
        {"duration_minutes": 5},
        {"window_days": -1},
        {"window_days": 32},
        {"provider": "FRONT_DESK"},
        {"provider": None},
    ],
)
def test_bad_bodies_are_400(api, front_desk, provider, six, at, change):
    body = plan_body(provider, at(2, 10))
    for key, value in change.items():
        body[key] = {"PAST": at(-1, 10).isoformat(), "FRONT_DESK": str(front_desk.id)}.get(
            value, value
        )
    for step in ("plan", "book"):
        response = api(front_desk).post(f"/api/v1/series/{six.id}/{step}/", body, format="json")
        assert_problem(response, 400, "invalid", errors=ANY)


@pytest.mark.django_db
def test_a_cancelled_series_is_invalid_state(api, front_desk, provider, six, at):
    api(front_desk).post(f"/api/v1/series/{six.id}/cancel/")
    response = api(front_desk).post(f"/api/v1/series/{six.id}/book/", plan_body(provider, at(2)))
    assert_problem(response, 409, "invalid_state")


@pytest.mark.django_db
def test_book_honours_the_idempotency_key(api, front_desk, provider, six, at):
    client = api(front_desk)
    body = plan_body(provider, at(2, 10))
    first = client.post(f"/api/v1/series/{six.id}/book/", body, HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post(f"/api/v1/series/{six.id}/book/", body, HTTP_IDEMPOTENCY_KEY="k-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert Session.objects.count() == 6
    other = client.post(
        f"/api/v1/series/{six.id}/book/",
        plan_body(provider, at(3, 10)),
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    assert_problem(other, 422, "idempotency_key_reused")


@pytest.mark.django_db
def test_roles_and_scoping(api, staff_by_role, provider, six, at, other_clinic, make_user):
    body = plan_body(provider, at(2, 10))
    for role, user in staff_by_role.items():
        response = api(user).post(f"/api/v1/series/{six.id}/plan/", body)
        assert response.status_code == (403 if role == "auditor" else 200), role
    assert_problem(
        api(staff_by_role["auditor"]).post(f"/api/v1/series/{six.id}/book/", body),
        403,
        "permission_denied",
    )
    stranger = make_user("admin", other_clinic)
    for step in ("plan", "book"):
        assert_problem(
            api(stranger).post(f"/api/v1/series/{six.id}/{step}/", body), 404, "not_found"
        )


@pytest.mark.django_db
def test_the_book_response_costs_the_same_per_session(api, front_desk, provider, make_series, at):
    """Each session's own checks and insert, and nothing more: its answer (attestation
    included, columns of the session row) adds no query per session."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = api(front_desk)
    counts = []
    for planned in (3, 4, 5):
        series = make_series(planned_sessions=planned, interval_days=30)
        with CaptureQueriesContext(connection) as queries:
            response = client.post(
                f"/api/v1/series/{series.id}/book/", plan_body(provider, at(2 + planned, 10))
            )
        assert response.status_code == 201, response.content
        assert [s["attestation"] for s in response.json()["sessions"]] == [None] * planned
        counts.append(len(queries))
    assert counts[2] - counts[1] == counts[1] - counts[0]
