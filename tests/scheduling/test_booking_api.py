"""POST /sessions/: every rule a booking must pass, each answered with its exact code."""

from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from clinic.models import AuditEvent
from scheduling.models import Session
from tests.factories import PatientFactory, ScreeningFactory, SessionFactory


def booking(series, provider, starts_at, **changes):
    return {
        "series": str(series.id),
        "provider": str(provider.id),
        "starts_at": starts_at.isoformat(),
        **changes,
    }


def utc(moment):
    """How the API writes an instant: UTC, ISO 8601, `Z`."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def problem(response):
    return response.status_code, response.json()["code"]


@pytest.mark.django_db
def test_book_a_session(front_desk, provider, api, series, room, at):
    starts_at = at(3, 9, 30)
    response = api(front_desk).post(
        "/api/v1/sessions/",
        booking(series, provider, starts_at, room=str(room.id), duration_minutes=45),
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body == {
        "id": body["id"],
        "series": str(series.id),
        "patient": str(series.patient_id),
        "provider": str(provider.id),
        "room": str(room.id),
        "starts_at": utc(starts_at),
        "ends_at": utc(starts_at + timedelta(minutes=45)),
        "duration_minutes": 45,
        "status": "booked",
        "number": 1,
        "flags": [],
        "cancel_reason": "",
        "checked_in_at": None,
        "attestation": None,
        "confirmed_at": None,
    }
    event = AuditEvent.objects.get(action="session.book")
    assert (event.object_id, event.patient_id, event.actor_id) == (
        body["id"],
        series.patient_id,
        front_desk.id,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("clash", ["provider", "room", "patient"])
@pytest.mark.parametrize("offset_minutes", [0, 30, -30])
def test_an_overlap_is_409_naming_what_is_taken(
    front_desk,
    api,
    series,
    room,
    at,
    make_provider,
    make_series,
    make_patient,
    clash,
    offset_minutes,
):
    taken = SessionFactory(series=series, starts_at=at(5, 10), room=room)
    other_series = make_series() if clash == "patient" else make_series(patient=make_patient())
    provider = taken.provider if clash == "provider" else make_provider()
    other_room = room if clash == "room" else None
    starts_at = at(5, 10) + timedelta(minutes=offset_minutes)
    body = booking(other_series, provider, starts_at)
    if other_room:
        body["room"] = str(other_room.id)
    response = api(front_desk).post("/api/v1/sessions/", body)
    assert problem(response) == (409, f"{clash}_unavailable")
    assert response.json()["status"] == 409
    assert Session.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("clash", ["provider", "room", "patient"])
def test_the_database_refuses_an_overlap_the_check_missed(
    front_desk, api, series, room, at, make_provider, make_series, make_patient, monkeypatch, clash
):
    """What a race looks like: the service's own check saw nothing, PostgreSQL still refuses,
    and the answer is the same code."""
    from scheduling import slots

    taken = SessionFactory(series=series, starts_at=at(5, 10), room=room)
    checks = iter([None])  # the first check misses; the one after the refusal sees the truth
    real = slots.slot_conflict
    monkeypatch.setattr(slots, "slot_conflict", lambda *a: next(checks, real(*a)))
    other_series = make_series() if clash == "patient" else make_series(patient=make_patient())
    provider = taken.provider if clash == "provider" else make_provider()
    body = booking(other_series, provider, at(5, 10, 30))
    if clash == "room":
        body["room"] = str(room.id)
    assert problem(api(front_desk).post("/api/v1/sessions/", body)) == (409, f"{clash}_unavailable")

    # And with no second look at all, the constraint's name alone gives the same answer.
    monkeypatch.setattr(slots, "slot_conflict", lambda *a: None)
    assert problem(api(front_desk).post("/api/v1/sessions/", body)) == (409, f"{clash}_unavailable")
    assert Session.objects.count() == 1


@pytest.mark.django_db
def test_sessions_without_a_room_share_no_room(
    front_desk, api, at, make_series, make_patient, make_provider
):
    client = api(front_desk)
    for _ in range(2):
        body = booking(make_series(patient=make_patient()), make_provider(), at(5))
        assert client.post("/api/v1/sessions/", body).status_code == 201


@pytest.mark.django_db
def test_series_full_counts_booked_and_completed_but_not_cancelled(
    front_desk, provider, api, series, at
):
    client = api(front_desk)
    SessionFactory(series=series, starts_at=at(1), status="completed")
    SessionFactory(series=series, starts_at=at(31), status="checked_in")
    dropped = SessionFactory(series=series, starts_at=at(61), status="cancelled")
    assert client.post("/api/v1/sessions/", booking(series, provider, at(61))).status_code == 201
    response = client.post("/api/v1/sessions/", booking(series, provider, at(91)))
    assert problem(response) == (409, "series_full")
    assert Session.objects.filter(series=series).exclude(pk=dropped.pk).count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("day", "expected"),
    [(15, 422), (31, 422), (40, 422), (44, 422), (9, 201), (51, 201)],
)
def test_interval_too_short_before_and_after(front_desk, provider, api, series, at, day, expected):
    """Another session of the series on day 30; the clinic minimum is 21 days."""
    SessionFactory(series=series, starts_at=at(30))
    response = api(front_desk).post("/api/v1/sessions/", booking(series, provider, at(day, 15)))
    assert response.status_code == expected
    if expected == 422:
        assert response.json()["code"] == "interval_too_short"


@pytest.mark.django_db
def test_interval_is_the_clinics_setting_and_ignores_cancelled_sessions(
    front_desk, provider, api, series, at, clinic
):
    clinic.min_interval_days = 28
    clinic.save()
    SessionFactory(series=series, starts_at=at(30))
    SessionFactory(series=series, starts_at=at(10), status="cancelled")
    client = api(front_desk)
    assert problem(client.post("/api/v1/sessions/", booking(series, provider, at(3)))) == (
        422,
        "interval_too_short",
    )
    assert client.post("/api/v1/sessions/", booking(series, provider, at(2))).status_code == 201


@pytest.mark.django_db
def test_a_contraindication_blocks_with_reasons(front_desk, provider, api, make_series, at, clinic):
    patient = PatientFactory(clinic=clinic)
    ScreeningFactory(
        patient=patient,
        screened_by=front_desk,
        eligible=False,
        contraindications=["pregnant_or_nursing", "active_skin_infection"],
        eligible_from=None,
    )
    response = api(front_desk).post(
        "/api/v1/sessions/", booking(make_series(patient=patient), provider, at(3))
    )
    assert problem(response) == (422, "patient_not_eligible")
    assert response.json()["reasons"] == ["pregnant_or_nursing", "active_skin_infection"]
    assert not Session.objects.exists()


@pytest.mark.django_db
def test_an_expired_screening_with_another_reason_blocks_with_both(
    front_desk, provider, api, make_series, at, clinic
):
    patient = PatientFactory(clinic=clinic)
    ScreeningFactory(
        patient=patient,
        screened_by=front_desk,
        washout_ends_on=at(200).date(),
    )
    response = api(front_desk).post(
        "/api/v1/sessions/", booking(make_series(patient=patient), provider, at(120))
    )
    assert problem(response) == (422, "patient_not_eligible")
    assert response.json()["reasons"] == ["screening_expired", "isotretinoin_washout"]


@pytest.mark.django_db
def test_a_patient_too_young_on_the_day_is_not_eligible(
    front_desk, provider, api, make_series, make_patient, at
):
    turns_22_on = at(10).date()
    patient = make_patient(date_of_birth=turns_22_on.replace(year=turns_22_on.year - 22))
    series = make_series(patient=patient)
    response = api(front_desk).post("/api/v1/sessions/", booking(series, provider, at(9)))
    assert (problem(response), response.json()["reasons"]) == (
        (422, "patient_not_eligible"),
        ["under_minimum_age"],
    )
    assert (
        api(front_desk).post("/api/v1/sessions/", booking(series, provider, at(10))).status_code
        == 201
    )


@pytest.mark.django_db
def test_a_session_past_the_screenings_validity_is_booked_and_flagged(
    front_desk, provider, api, series, at
):
    """The screening (today) holds 90 days; the series is booked ahead regardless."""
    client = api(front_desk)
    response = client.post("/api/v1/sessions/", booking(series, provider, at(91)))
    assert response.status_code == 201
    assert response.json()["flags"] == ["screening_expired"]
    response = client.post("/api/v1/sessions/", booking(series, provider, at(60)))
    assert response.json()["flags"] == []
    flagged = client.get("/api/v1/sessions/", {"flagged": "true"}).json()["results"]
    assert [row["flags"] for row in flagged] == [["screening_expired"]]


@pytest.mark.django_db
def test_starts_at_in_the_past_is_400(front_desk, provider, api, series):
    past = timezone.now() - timedelta(minutes=1)
    response = api(front_desk).post("/api/v1/sessions/", booking(series, provider, past))
    assert problem(response) == (400, "invalid")
    assert response.json()["errors"] == {"starts_at": ["Must not be in the past."]}


@pytest.mark.django_db
def test_the_provider_must_hold_the_provider_role(front_desk, admin, api, series, at):
    for not_a_provider in (front_desk, admin):
        response = api(front_desk).post("/api/v1/sessions/", booking(series, not_a_provider, at(3)))
        assert problem(response) == (400, "invalid")
        assert list(response.json()["errors"]) == ["provider"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"starts_at": "2031-01-01T10:00:00"}, "starts_at"),  # no offset: ambiguous
        ({"starts_at": "tomorrow"}, "starts_at"),
        ({"duration_minutes": 14}, "duration_minutes"),
        ({"duration_minutes": 241}, "duration_minutes"),
        ({"series": "00000000-0000-0000-0000-000000000000"}, "series"),
        ({"room": "00000000-0000-0000-0000-000000000000"}, "room"),
    ],
)
def test_bad_booking_fields_are_400(front_desk, provider, api, series, at, change, field):
    response = api(front_desk).post(
        "/api/v1/sessions/", {**booking(series, provider, at(3)), **change}
    )
    assert problem(response) == (400, "invalid")
    assert list(response.json()["errors"]) == [field]


@pytest.mark.django_db
def test_another_clinics_provider_room_and_series_are_refused(
    front_desk, provider, api, series, at, other_clinic, make_user
):
    from tests.factories import RoomFactory, SeriesFactory

    client = api(front_desk)
    theirs = {
        "provider": str(make_user("provider", other_clinic).id),
        "room": str(RoomFactory(clinic=other_clinic).id),
        "series": str(SeriesFactory().id),
    }
    for field, value in theirs.items():
        response = client.post(
            "/api/v1/sessions/", {**booking(series, provider, at(3)), field: value}
        )
        assert response.json()["errors"] == {field: ["No such object in your clinic."]}


@pytest.mark.django_db
@pytest.mark.parametrize("series_status", ["cancelled", "completed"])
def test_a_series_that_is_over_takes_no_booking(
    front_desk, provider, api, make_series, at, series_status
):
    series = make_series(status=series_status)
    response = api(front_desk).post("/api/v1/sessions/", booking(series, provider, at(3)))
    assert problem(response) == (409, "invalid_state")


@pytest.mark.django_db
def test_an_archived_patient_takes_no_booking(front_desk, provider, api, series, at):
    series.patient.archived_at = timezone.now()
    series.patient.save()
    response = api(front_desk).post("/api/v1/sessions/", booking(series, provider, at(3)))
    assert problem(response) == (409, "invalid_state")


@pytest.mark.django_db
def test_flags_follow_each_new_screening(front_desk, provider, api, make_series, at, clinic):
    """Recorded through the patients API: the flags change in the same transaction."""
    patient = PatientFactory(clinic=clinic)
    ScreeningFactory(
        patient=patient,
        screened_by=front_desk,
        screened_on=at(-45).date(),
        screened_at=timezone.now() - timedelta(days=45),
    )
    client = api(front_desk)
    series = make_series(patient=patient)
    session_id = client.post("/api/v1/sessions/", booking(series, provider, at(60))).json()["id"]
    done = SessionFactory(series=series, starts_at=at(-30), status="completed")

    def flags():
        return client.get(f"/api/v1/sessions/{session_id}/").json()["flags"]

    assert flags() == ["screening_expired"]
    screenings = f"/api/v1/patients/{patient.id}/screenings/"
    assert client.post(screenings, {}).status_code == 201
    assert flags() == []
    assert client.post(screenings, {"pregnant_or_nursing": True}).status_code == 201
    assert flags() == ["not_eligible"]
    assert (
        client.get("/api/v1/sessions/", {"flagged": "true"}).json()["results"][0]["id"]
        == session_id
    )
    assert client.post(screenings, {}).status_code == 201
    assert flags() == []
    done.refresh_from_db()
    assert done.flags == []  # only sessions still to come carry flags
    assert AuditEvent.objects.filter(action="session.flags").count() == 3


@pytest.mark.django_db
def test_neck_series_is_refused_at_booking_once_the_skin_type_is_corrected(
    front_desk, provider, api, make_series, patient, at
):
    series = make_series(indication="neck_wrinkles")
    patient.fitzpatrick_type = 5
    patient.save()
    response = api(front_desk).post("/api/v1/sessions/", booking(series, provider, at(3)))
    assert problem(response) == (422, "indication_not_allowed")
    assert not Session.objects.exists()
