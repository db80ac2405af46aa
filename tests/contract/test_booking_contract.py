"""Black-box checks of the v1 contract's "Series" and "Sessions" (booking) sections, over HTTP.

Issue 4: series, booking, rescheduling, the session state machine, the day view and its
filters, and every error code of the contract's table that booking owns. Expectations come
from ../shared/api-contract.md, not from the implementation. Patients, screenings, series and
sessions are made through the API; factories only make what the API cannot (a session in the
past, a screening taken weeks ago).
"""

from __future__ import annotations

import itertools
import uuid
from datetime import date, datetime, time, timedelta
from unittest.mock import ANY
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from clinic.models import Role
from patients.models import Patient
from scheduling.models import Series, SessionStatus
from tests.factories import ScreeningFactory, SessionFactory
from tests.factories.scheduling import ATTESTATION, starts_today
from tests.helpers import assert_ok, assert_problem, assert_uuid, instant

PATIENTS = "/api/v1/patients/"
SERIES = "/api/v1/series/"
SESSIONS = "/api/v1/sessions/"
ROOMS = "/api/v1/rooms/"

SERIES_FIELDS = {
    "id",
    "patient",
    "indication",
    "planned_sessions",
    "interval_days",
    "status",
    "sessions_completed",
    "sessions_booked",
    "next_due_on",
}
SESSION_FIELDS = {
    "id",
    "series",
    "patient",
    "provider",
    "room",
    "starts_at",
    "ends_at",
    "status",
    "number",
    "flags",
}
SESSION_STATUSES = {"booked", "checked_in", "completed", "cancelled", "no_show"}
SESSION_FLAGS = {"screening_expired", "not_eligible"}

pytestmark = pytest.mark.django_db

_serial = itertools.count(100)


# --- helpers -----------------------------------------------------------------------------------


def listed(client: APIClient, path: str, **params) -> list[dict]:
    body = assert_ok(client.get(path, {"page_size": 200, **params}))
    assert set(body) >= {"results", "next", "previous"}
    assert body["next"] is None
    return body["results"]


def ids(rows: list[dict]) -> set[str]:
    return {row["id"] for row in rows}


def create_patient(client: APIClient, **overrides) -> dict:
    n = next(_serial)
    body = {
        "first_name": f"Ana{n}",
        "last_name": "Reyes",
        "date_of_birth": "1990-05-17",
        "email": f"ana{n}@example.com",
        "phone": f"+1202555{n % 10000:04d}",
        "fitzpatrick_type": 3,
        "sms_opt_in": True,
        "email_opt_in": True,
        **overrides,
    }
    return assert_ok(client.post(PATIENTS, body, format="json"), 201)


def screen(client: APIClient, patient_id: str, **answers) -> dict:
    return assert_ok(
        client.post(f"{PATIENTS}{patient_id}/screenings/", answers, format="json"), 201
    )


def create_series(client: APIClient, patient_id: str, **overrides) -> dict:
    body = {"patient": patient_id, "indication": "acne_scars", "planned_sessions": 3, **overrides}
    return assert_ok(client.post(SERIES, body, format="json"), 201)


def booking(series_id: str, provider, starts_at: datetime, **overrides) -> dict:
    return {
        "series": series_id,
        "provider": str(provider.id),
        "starts_at": starts_at.isoformat(),
        **overrides,
    }


def book(client: APIClient, series_id: str, provider, starts_at: datetime, **overrides):
    return client.post(
        SESSIONS, booking(series_id, provider, starts_at, **overrides), format="json"
    )


def booked(client: APIClient, series_id: str, provider, starts_at: datetime, **overrides) -> dict:
    return assert_ok(book(client, series_id, provider, starts_at, **overrides), 201)


def action(client: APIClient, session_id: str, name: str, body: dict | None = None):
    return client.post(f"{SESSIONS}{session_id}/{name}/", body or {}, format="json")


def get_session(client: APIClient, session_id: str) -> dict:
    return assert_ok(client.get(f"{SESSIONS}{session_id}/"))


def get_series(client: APIClient, series_id: str) -> dict:
    return assert_ok(client.get(f"{SERIES}{series_id}/"))


def assert_session_shape(body: dict) -> None:
    assert set(body) >= SESSION_FIELDS, SESSION_FIELDS - set(body)
    for field in ("id", "series", "patient", "provider"):
        assert_uuid(body[field])
    if body["room"] is not None:
        assert_uuid(body["room"])
    assert instant(body["starts_at"]) < instant(body["ends_at"])
    assert body["status"] in SESSION_STATUSES
    assert body["number"] is None or isinstance(body["number"], int)
    assert isinstance(body["flags"], list)
    assert set(body["flags"]) <= SESSION_FLAGS


def assert_series_shape(body: dict) -> None:
    assert set(body) >= SERIES_FIELDS, SERIES_FIELDS - set(body)
    assert_uuid(body["id"])
    assert_uuid(body["patient"])
    assert body["indication"] in {"acne_scars", "fine_lines_wrinkles", "neck_wrinkles"}
    for field in ("planned_sessions", "interval_days", "sessions_completed", "sessions_booked"):
        assert isinstance(body[field], int) and not isinstance(body[field], bool), field
    assert body["status"] in {"active", "completed", "cancelled"}
    if body["next_due_on"] is not None:
        date.fromisoformat(body["next_due_on"])


def past_session(series_id: str, provider, *, starts_at: datetime, status: str) -> str:
    """A session already in the past: the API refuses to book one, so it is written directly."""
    series = Series.objects.get(pk=series_id)
    return str(
        SessionFactory(
            series=series,
            provider=provider,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=1),
            status=status,
            created_by=provider,
        ).id
    )


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def booked_today(clinic, provider):
    """booked_today(series_id): a booked session of the series on the clinic's today, where
    check-in opens (v1.1); booking in the past is refused, so it is written directly."""
    starts = starts_today(clinic)

    def make(series_id: str) -> str:
        return past_session(
            series_id, provider, starts_at=next(starts), status=SessionStatus.BOOKED
        )

    return make


@pytest.fixture
def zone(clinic) -> ZoneInfo:
    return ZoneInfo(clinic.timezone)


@pytest.fixture
def today(zone) -> date:
    return timezone.localdate(timezone=zone)


@pytest.fixture
def at(zone, today):
    """at(days, hour=10, minute=0): that wall-clock time in the clinic, `days` from today."""

    def make(days: int, hour: int = 10, minute: int = 0) -> datetime:
        return datetime.combine(today + timedelta(days=days), time(hour, minute), zone)

    return make


@pytest.fixture
def fd(api, front_desk) -> APIClient:
    return api(front_desk)


@pytest.fixture
def patient(fd) -> dict:
    """A 35-year-old, Fitzpatrick III, with a clean screening taken today."""
    patient = create_patient(fd)
    screen(fd, patient["id"])
    return patient


@pytest.fixture
def series(fd, patient) -> dict:
    return create_series(fd, patient["id"])


@pytest.fixture
def make_series(fd):
    """A series (3 planned) of a new, eligible patient."""

    def make(**overrides) -> dict:
        patient = create_patient(fd)
        screen(fd, patient["id"])
        return create_series(fd, patient["id"], **overrides)

    return make


@pytest.fixture
def make_room(api, admin):
    client = api(admin)

    def make() -> dict:
        return assert_ok(client.post(ROOMS, {"name": f"Room {next(_serial)}"}, format="json"), 201)

    return make


@pytest.fixture
def make_provider(make_user, clinic):
    return lambda: make_user(Role.PROVIDER, clinic)


# --- series ------------------------------------------------------------------------------------


def test_a_series_is_created_with_the_contract_fields_and_the_clinic_default_interval(fd, patient):
    body = assert_ok(
        fd.post(
            SERIES,
            {"patient": patient["id"], "indication": "acne_scars", "planned_sessions": 4},
            format="json",
        ),
        201,
    )
    assert_series_shape(body)
    assert {k: body[k] for k in SERIES_FIELDS - {"id", "next_due_on"}} == {
        "patient": patient["id"],
        "indication": "acne_scars",
        "planned_sessions": 4,
        "interval_days": 30,
        "status": "active",
        "sessions_completed": 0,
        "sessions_booked": 0,
    }
    assert get_series(fd, body["id"]) == body


def test_a_series_takes_an_explicit_interval(fd, patient):
    body = create_series(fd, patient["id"], interval_days=28, indication="fine_lines_wrinkles")
    assert (body["interval_days"], body["indication"]) == (28, "fine_lines_wrinkles")


@pytest.mark.parametrize("planned", [3, 6])
def test_three_to_six_planned_sessions_are_accepted(fd, patient, planned):
    assert create_series(fd, patient["id"], planned_sessions=planned)["planned_sessions"] == planned


@pytest.mark.parametrize(
    "changes",
    [
        {"planned_sessions": 2},
        {"planned_sessions": 7},
        {"planned_sessions": "three"},
        {"indication": "stretch_marks"},
        {"indication": None},
        {"patient": "not-a-uuid"},
    ],
    ids=["2 planned", "7 planned", "planned not a number", "unknown indication", "null", "bad id"],
)
def test_a_bad_series_body_is_400_invalid(fd, patient, changes):
    body = {"patient": patient["id"], "indication": "acne_scars", "planned_sessions": 3, **changes}
    assert_problem(fd.post(SERIES, body, format="json"), 400, "invalid", errors=ANY)
    assert listed(fd, SERIES) == []


@pytest.mark.parametrize("fitzpatrick_type", [1, 5, 6])
def test_neck_wrinkles_outside_fitzpatrick_ii_to_iv_is_422_indication_not_allowed(
    fd, fitzpatrick_type
):
    patient = create_patient(fd, fitzpatrick_type=fitzpatrick_type)
    screen(fd, patient["id"])
    body = {"patient": patient["id"], "indication": "neck_wrinkles", "planned_sessions": 4}
    assert_problem(fd.post(SERIES, body, format="json"), 422, "indication_not_allowed")
    assert listed(fd, SERIES, patient=patient["id"]) == []
    # The face is cleared for every skin type.
    assert create_series(fd, patient["id"], indication="acne_scars")["status"] == "active"


@pytest.mark.parametrize("fitzpatrick_type", [2, 3, 4])
def test_neck_wrinkles_for_fitzpatrick_ii_to_iv_is_allowed(fd, fitzpatrick_type):
    patient = create_patient(fd, fitzpatrick_type=fitzpatrick_type)
    screen(fd, patient["id"])
    body = create_series(fd, patient["id"], indication="neck_wrinkles", planned_sessions=4)
    assert body["indication"] == "neck_wrinkles"


def test_series_list_filters_by_patient(fd, patient, make_series):
    mine = create_series(fd, patient["id"])
    other = make_series()
    rows = listed(fd, SERIES, patient=patient["id"])
    assert ids(rows) == {mine["id"]}
    for row in rows:
        assert_series_shape(row)
    assert ids(listed(fd, SERIES)) == {mine["id"], other["id"]}


def test_series_counts_follow_bookings_and_cancellations(fd, series, provider, at):
    first = booked(fd, series["id"], provider, at(2))
    booked(fd, series["id"], provider, at(30))
    body = get_series(fd, series["id"])
    assert (body["sessions_booked"], body["sessions_completed"]) == (2, 0)

    assert_ok(action(fd, first["id"], "cancel", {"reason": "Patient asked"}))
    body = get_series(fd, series["id"])
    assert (body["sessions_booked"], body["sessions_completed"], body["status"]) == (1, 0, "active")


# --- booking: the happy path -------------------------------------------------------------------


def test_a_booking_is_201_with_the_contract_fields(fd, series, patient, provider, make_room, at):
    room = make_room()
    starts_at = at(3, 9, 30)
    body = assert_ok(
        book(fd, series["id"], provider, starts_at, room=room["id"], duration_minutes=45), 201
    )
    assert_session_shape(body)
    assert body["series"] == series["id"]
    assert body["patient"] == patient["id"]
    assert body["provider"] == str(provider.id)
    assert body["room"] == room["id"]
    assert instant(body["starts_at"]) == starts_at
    assert instant(body["ends_at"]) == starts_at + timedelta(minutes=45)
    assert (body["status"], body["number"], body["flags"]) == ("booked", 1, [])
    assert get_session(fd, body["id"]) == body


def test_a_booking_lasts_an_hour_by_default_and_needs_no_room(fd, series, provider, at):
    body = booked(fd, series["id"], provider, at(3))
    assert body["room"] is None
    assert instant(body["ends_at"]) - instant(body["starts_at"]) == timedelta(minutes=60)


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.PROVIDER, Role.ADMIN])
def test_front_desk_provider_and_admin_book_and_manage_sessions(
    staff_by_role, api, series, provider, at, role, booked_today
):
    client = api(staff_by_role[role])
    first = booked(client, series["id"], provider, at(3))
    second = booked(client, series["id"], provider, at(30))
    third = booked(client, series["id"], provider, at(60))
    moved = assert_ok(action(client, first["id"], "reschedule", {"starts_at": at(4).isoformat()}))
    assert instant(moved["starts_at"]) == at(4)
    # Check-in opens on the session's own day (v1.1).
    here = booked_today(series["id"])
    assert assert_ok(action(client, here, "check-in", ATTESTATION))["status"] == "checked_in"
    assert assert_ok(action(client, second["id"], "cancel", {"reason": "Ill"}))["status"] == (
        "cancelled"
    )
    assert assert_ok(action(client, third["id"], "no-show"))["status"] == "no_show"


def test_the_auditor_reads_but_never_writes(api, auditor, fd, patient, series, provider, at):
    session = booked(fd, series["id"], provider, at(3))
    client = api(auditor)
    assert get_session(client, session["id"]) == session
    assert get_series(client, series["id"])["id"] == series["id"]
    assert ids(listed(client, SESSIONS)) == {session["id"]}

    body = {"patient": patient["id"], "indication": "acne_scars", "planned_sessions": 3}
    assert_problem(client.post(SERIES, body, format="json"), 403, "permission_denied")
    assert_problem(book(client, series["id"], provider, at(40)), 403, "permission_denied")
    for name, data in [
        ("reschedule", {"starts_at": at(5).isoformat()}),
        ("cancel", {"reason": "x"}),
        ("check-in", {}),
        ("no-show", {}),
    ]:
        assert_problem(action(client, session["id"], name, data), 403, "permission_denied")
    assert_problem(
        client.post(f"{SERIES}{series['id']}/cancel/", {}, format="json"), 403, "permission_denied"
    )
    assert get_session(fd, session["id"]) == session
    assert len(listed(fd, SESSIONS)) == 1


# --- booking: overlaps -------------------------------------------------------------------------

# (start offset, duration) of the second booking against a first one at 10:00-11:00.
OVERLAPS = {
    "same time": (0, 60),
    "starts inside": (30, 60),
    "ends inside": (-30, 60),
    "inside": (15, 30),
    "around": (-15, 120),
}


@pytest.mark.parametrize("case", sorted(OVERLAPS))
def test_the_same_provider_at_an_overlapping_time_is_409_provider_unavailable(
    fd, make_series, provider, at, case
):
    offset, duration = OVERLAPS[case]
    booked(fd, make_series()["id"], provider, at(3))
    other = make_series()
    starts_at = at(3) + timedelta(minutes=offset)
    response = book(fd, other["id"], provider, starts_at, duration_minutes=duration)
    assert_problem(response, 409, "provider_unavailable")
    assert listed(fd, SESSIONS, series=other["id"]) == []


@pytest.mark.parametrize("case", sorted(OVERLAPS))
def test_the_same_room_at_an_overlapping_time_is_409_room_unavailable(
    fd, make_series, make_provider, make_room, at, case
):
    offset, duration = OVERLAPS[case]
    room = make_room()
    booked(fd, make_series()["id"], make_provider(), at(3), room=room["id"])
    other = make_series()
    starts_at = at(3) + timedelta(minutes=offset)
    response = book(
        fd, other["id"], make_provider(), starts_at, room=room["id"], duration_minutes=duration
    )
    assert_problem(response, 409, "room_unavailable")
    assert listed(fd, SESSIONS, series=other["id"]) == []


@pytest.mark.parametrize("case", sorted(OVERLAPS))
def test_the_same_patient_at_an_overlapping_time_is_409_patient_unavailable(
    fd, patient, make_provider, make_room, at, case
):
    """Two series of one patient (face and neck), other provider, other room: only the patient
    is double-booked."""
    offset, duration = OVERLAPS[case]
    face = create_series(fd, patient["id"], indication="acne_scars")
    neck = create_series(fd, patient["id"], indication="neck_wrinkles", planned_sessions=4)
    booked(fd, face["id"], make_provider(), at(3), room=make_room()["id"])
    starts_at = at(3) + timedelta(minutes=offset)
    response = book(
        fd,
        neck["id"],
        make_provider(),
        starts_at,
        room=make_room()["id"],
        duration_minutes=duration,
    )
    assert_problem(response, 409, "patient_unavailable")
    assert listed(fd, SESSIONS, series=neck["id"]) == []


def test_back_to_back_sessions_do_not_overlap(fd, make_series, provider, make_room, at):
    room = make_room()
    booked(fd, make_series()["id"], provider, at(3, 10), room=room["id"])
    after = booked(fd, make_series()["id"], provider, at(3, 11), room=room["id"])
    before = booked(
        fd, make_series()["id"], provider, at(3, 9, 30), room=room["id"], duration_minutes=30
    )
    assert (after["status"], before["status"]) == ("booked", "booked")


@pytest.mark.parametrize("how", ["cancel", "no-show"])
def test_cancelled_and_no_show_sessions_free_their_time(
    fd, patient, make_series, provider, make_room, at, how
):
    room = make_room()
    series = create_series(fd, patient["id"])
    first = booked(fd, series["id"], provider, at(3), room=room["id"])
    assert_ok(action(fd, first["id"], how, {"reason": "freed"} if how == "cancel" else {}))

    # The same provider, room and patient, at the same time.
    other = create_series(fd, patient["id"], indication="fine_lines_wrinkles")
    again = booked(fd, other["id"], provider, at(3), room=room["id"])
    assert again["status"] == "booked"


def test_rescheduling_onto_a_taken_time_is_409_and_changes_nothing(
    fd, make_series, provider, make_room, make_provider, patient, at
):
    room = make_room()
    booked(fd, make_series()["id"], provider, at(3, 10), room=room["id"])
    mine = booked(fd, create_series(fd, patient["id"])["id"], provider, at(3, 14))
    moved = action(fd, mine["id"], "reschedule", {"starts_at": at(3, 10, 30).isoformat()})
    assert_problem(moved, 409, "provider_unavailable")
    assert get_session(fd, mine["id"]) == mine

    other = booked(
        fd, make_series()["id"], make_provider(), at(4, 14), room=room["id"], duration_minutes=60
    )
    # Other provider, moved into the room's time: the room is what is taken.
    moved = action(
        fd,
        other["id"],
        "reschedule",
        {"starts_at": at(3, 9, 30).isoformat(), "duration_minutes": 60},
    )
    assert_problem(moved, 409, "room_unavailable")
    assert get_session(fd, other["id"]) == other


# --- booking: series rules ---------------------------------------------------------------------


def test_a_booking_beyond_planned_sessions_is_409_series_full(fd, series, provider, at):
    sessions = [booked(fd, series["id"], provider, at(days)) for days in (2, 25, 48)]
    assert_problem(book(fd, series["id"], provider, at(71)), 409, "series_full")
    assert len(listed(fd, SESSIONS, series=series["id"])) == 3

    # A cancelled session gives its place back.
    assert_ok(action(fd, sessions[2]["id"], "cancel", {"reason": "moved"}))
    assert booked(fd, series["id"], provider, at(71))["number"] == 3


def test_completed_sessions_count_towards_series_full(fd, series, provider, at):
    for days_ago in (50, 25):
        past_session(
            series["id"],
            provider,
            starts_at=at(-days_ago),
            status=SessionStatus.COMPLETED,
        )
    booked(fd, series["id"], provider, at(2))
    assert_problem(book(fd, series["id"], provider, at(30)), 409, "series_full")


@pytest.mark.parametrize(
    "days",
    [40, 50, 20, 10, 31],
    ids=["10 after", "20 after", "10 before", "20 before", "1 after"],
)
def test_a_session_closer_than_the_minimum_interval_is_422_interval_too_short(
    fd, series, provider, at, days
):
    booked(fd, series["id"], provider, at(30))
    response = book(fd, series["id"], provider, at(days, 15))
    assert_problem(response, 422, "interval_too_short")
    assert len(listed(fd, SESSIONS, series=series["id"])) == 1


@pytest.mark.parametrize("days", [9, 51], ids=["21 days before", "21 days after"])
def test_exactly_the_minimum_interval_is_allowed(fd, series, provider, at, days):
    booked(fd, series["id"], provider, at(30))
    assert booked(fd, series["id"], provider, at(days))["status"] == "booked"


def test_the_minimum_interval_is_the_clinics_setting(api, admin, fd, series, provider, at):
    response = api(admin).patch("/api/v1/clinic/", {"min_interval_days": 28}, format="json")
    assert_ok(response)
    booked(fd, series["id"], provider, at(2))
    assert_problem(book(fd, series["id"], provider, at(27)), 422, "interval_too_short")
    assert booked(fd, series["id"], provider, at(30))["status"] == "booked"


def test_a_cancelled_session_does_not_count_for_the_interval(fd, series, provider, at):
    first = booked(fd, series["id"], provider, at(30))
    assert_ok(action(fd, first["id"], "cancel", {"reason": "moved"}))
    assert booked(fd, series["id"], provider, at(35))["status"] == "booked"


def test_rescheduling_too_close_to_another_session_is_422_interval_too_short(
    fd, series, provider, at
):
    booked(fd, series["id"], provider, at(2))
    second = booked(fd, series["id"], provider, at(30))
    moved = action(fd, second["id"], "reschedule", {"starts_at": at(12).isoformat()})
    assert_problem(moved, 422, "interval_too_short")
    assert get_session(fd, second["id"]) == second


# --- booking: eligibility ----------------------------------------------------------------------


def not_eligible(response, reasons: set[str]) -> dict:
    body = assert_problem(response, 422, "patient_not_eligible")
    assert isinstance(body.get("reasons"), list), body
    assert set(body["reasons"]) == reasons, body
    return body


def test_a_patient_never_screened_is_422_no_screening(fd, provider, at):
    patient = create_patient(fd)
    series = create_series(fd, patient["id"])
    not_eligible(book(fd, series["id"], provider, at(3)), {"no_screening"})
    assert listed(fd, SESSIONS, series=series["id"]) == []


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("pregnant_or_nursing", "pregnant_or_nursing"),
        ("active_skin_cancer_in_area", "active_skin_cancer"),
        ("open_wounds_in_area", "open_wounds"),
        ("bleeding_disorder", "bleeding_disorder"),
        ("metal_or_anesthetic_allergy", "metal_or_anesthetic_allergy"),
        ("active_skin_infection", "active_skin_infection"),
    ],
)
def test_a_contraindication_is_422_patient_not_eligible_with_its_reason(
    fd, provider, at, answer, reason
):
    patient = create_patient(fd)
    screen(fd, patient["id"], **{answer: True})
    series = create_series(fd, patient["id"])
    not_eligible(book(fd, series["id"], provider, at(3)), {reason})
    assert listed(fd, SESSIONS, series=series["id"]) == []


def test_a_warning_does_not_block_booking(fd, provider, at):
    patient = create_patient(fd)
    screen(fd, patient["id"], anticoagulants=True, keloid_history=True, diabetes=True)
    series = create_series(fd, patient["id"])
    assert booked(fd, series["id"], provider, at(3))["flags"] == []


def test_under_22_on_the_session_date_is_422_under_minimum_age(fd, provider, at, today):
    birthday = today + timedelta(days=20)  # the 22nd birthday, 20 days from now
    dob = date(birthday.year - 22, birthday.month, min(birthday.day, 28))
    patient = create_patient(fd, date_of_birth=dob.isoformat())
    screen(fd, patient["id"])
    series = create_series(fd, patient["id"])
    not_eligible(book(fd, series["id"], provider, at(5)), {"under_minimum_age"})
    # Eligibility is judged on the session's date: by then the patient is 22.
    assert booked(fd, series["id"], provider, at(30))["flags"] == []


def test_within_the_isotretinoin_washout_is_422_and_after_it_is_booked(fd, provider, at, today):
    last_dose = today - timedelta(days=150)  # the 6-month washout ends about 30 days from now
    patient = create_patient(fd)
    screen(fd, patient["id"], isotretinoin_last_dose_on=last_dose.isoformat())
    series = create_series(fd, patient["id"])
    not_eligible(book(fd, series["id"], provider, at(3)), {"isotretinoin_washout"})
    assert booked(fd, series["id"], provider, at(45))["flags"] == []


def test_a_session_after_the_screening_lapses_is_booked_and_flagged(fd, patient, provider, at):
    series = create_series(fd, patient["id"])
    inside = booked(fd, series["id"], provider, at(60))
    after = booked(fd, series["id"], provider, at(100))  # the screening is valid for 90 days
    assert inside["flags"] == []
    assert after["flags"] == ["screening_expired"]
    assert after["status"] == "booked"
    assert get_session(fd, after["id"])["flags"] == ["screening_expired"]


def test_a_screening_already_lapsed_still_books_with_the_flag(fd, front_desk, provider, at, today):
    patient = create_patient(fd)
    ScreeningFactory(
        patient=Patient.objects.get(pk=patient["id"]),
        screened_by=front_desk,
        screened_on=today - timedelta(days=100),
        screened_at=timezone.now() - timedelta(days=100),
    )
    series = create_series(fd, patient["id"])
    body = booked(fd, series["id"], provider, at(3))
    assert body["flags"] == ["screening_expired"]


def test_a_new_screening_clears_the_flag(fd, front_desk, provider, at, today):
    patient = create_patient(fd)
    ScreeningFactory(
        patient=Patient.objects.get(pk=patient["id"]),
        screened_by=front_desk,
        screened_on=today - timedelta(days=60),
        screened_at=timezone.now() - timedelta(days=60),
    )
    series = create_series(fd, patient["id"])
    session = booked(fd, series["id"], provider, at(50))
    assert session["flags"] == ["screening_expired"]
    screen(fd, patient["id"])
    assert get_session(fd, session["id"])["flags"] == []


def test_a_new_screening_with_a_contraindication_flags_not_eligible(fd, patient, provider, at):
    series = create_series(fd, patient["id"])
    session = booked(fd, series["id"], provider, at(10))
    screen(fd, patient["id"], pregnant_or_nursing=True)
    assert "not_eligible" in get_session(fd, session["id"])["flags"]


# --- booking: malformed input ------------------------------------------------------------------


def test_starts_at_in_the_past_is_400_invalid(fd, series, provider):
    starts_at = timezone.now() - timedelta(hours=1)
    body = assert_problem(book(fd, series["id"], provider, starts_at), 400, "invalid", errors=ANY)
    assert "starts_at" in body.get("errors", {}), body
    assert listed(fd, SESSIONS) == []


def test_rescheduling_into_the_past_is_400_invalid(fd, series, provider, at):
    session = booked(fd, series["id"], provider, at(3))
    past = (timezone.now() - timedelta(days=1)).isoformat()
    assert_problem(
        action(fd, session["id"], "reschedule", {"starts_at": past}), 400, "invalid", errors=ANY
    )
    assert get_session(fd, session["id"]) == session


@pytest.mark.parametrize(
    "case",
    ["no series", "no starts_at", "starts_at garbage", "duration text", "provider not a provider"],
)
def test_a_malformed_booking_is_400_invalid(fd, series, provider, front_desk, at, case):
    body = booking(series["id"], provider, at(3))
    if case == "no series":
        del body["series"]
    elif case == "no starts_at":
        del body["starts_at"]
    elif case == "starts_at garbage":
        body["starts_at"] = "next tuesday"
    elif case == "duration text":
        body["duration_minutes"] = "an hour"
    else:
        body["provider"] = str(front_desk.id)
    assert_problem(fd.post(SESSIONS, body, format="json"), 400, "invalid", errors=ANY)
    assert listed(fd, SESSIONS) == []


# --- session numbers ---------------------------------------------------------------------------


def test_number_is_the_place_in_the_series_and_follows_cancel_and_reschedule(
    fd, series, provider, at
):
    a = booked(fd, series["id"], provider, at(60))
    b = booked(fd, series["id"], provider, at(2))
    c = booked(fd, series["id"], provider, at(30))

    def numbers():
        return {s["id"]: s["number"] for s in listed(fd, SESSIONS, series=series["id"])}

    assert numbers() == {b["id"]: 1, c["id"]: 2, a["id"]: 3}

    moved = assert_ok(action(fd, b["id"], "reschedule", {"starts_at": at(85).isoformat()}))
    assert moved["number"] == 3
    assert numbers() == {c["id"]: 1, a["id"]: 2, b["id"]: 3}

    assert_ok(action(fd, c["id"], "cancel", {"reason": "Ill"}))
    assert get_session(fd, a["id"])["number"] == 1
    assert get_session(fd, b["id"])["number"] == 2
    # The place is free again: a new session early in the series takes number 1.
    new = booked(fd, series["id"], provider, at(20))
    assert new["number"] == 1
    assert get_session(fd, a["id"])["number"] == 2
    assert get_session(fd, b["id"])["number"] == 3


def test_reschedule_keeps_or_changes_the_duration(fd, series, provider, at):
    session = booked(fd, series["id"], provider, at(3), duration_minutes=45)
    moved = assert_ok(action(fd, session["id"], "reschedule", {"starts_at": at(4).isoformat()}))
    assert instant(moved["starts_at"]) == at(4)
    assert instant(moved["ends_at"]) - at(4) == timedelta(minutes=45)
    moved = assert_ok(
        action(
            fd,
            session["id"],
            "reschedule",
            {"starts_at": at(5).isoformat(), "duration_minutes": 90},
        )
    )
    assert instant(moved["ends_at"]) - instant(moved["starts_at"]) == timedelta(minutes=90)
    assert moved["status"] == "booked"


# --- the session state machine -----------------------------------------------------------------


def test_cancelling_a_completed_session_is_409_invalid_state(fd, series, provider, at):
    done = past_session(series["id"], provider, starts_at=at(-3), status=SessionStatus.COMPLETED)
    before = get_session(fd, done)
    assert_problem(action(fd, done, "cancel", {"reason": "oops"}), 409, "invalid_state")
    assert_problem(action(fd, done, "no-show"), 409, "invalid_state")
    assert_problem(action(fd, done, "check-in"), 409, "invalid_state")
    assert get_session(fd, done) == before


@pytest.mark.parametrize("ended_as", ["cancel", "no-show"])
@pytest.mark.parametrize("then", ["check-in", "cancel", "no-show", "reschedule"])
def test_a_cancelled_or_no_show_session_is_finished_409_invalid_state(
    fd, series, provider, at, ended_as, then
):
    session = booked(fd, series["id"], provider, at(3))
    ended = assert_ok(action(fd, session["id"], ended_as, {"reason": "x"}))
    assert ended["status"] == {"cancel": "cancelled", "no-show": "no_show"}[ended_as]
    data = {"starts_at": at(4).isoformat()} if then == "reschedule" else {"reason": "x"}
    assert_problem(action(fd, session["id"], then, data), 409, "invalid_state")
    assert get_session(fd, session["id"])["status"] == ended["status"]


def test_a_checked_in_session_can_be_cancelled_or_marked_no_show(fd, series, booked_today):
    first, second = booked_today(series["id"]), booked_today(series["id"])
    for session in (first, second):
        assert assert_ok(action(fd, session, "check-in", ATTESTATION))["status"] == "checked_in"
    assert assert_ok(action(fd, first, "cancel", {"reason": "Felt unwell"}))["status"] == (
        "cancelled"
    )
    assert assert_ok(action(fd, second, "no-show"))["status"] == "no_show"


def test_checking_in_twice_is_409_invalid_state(fd, series, booked_today):
    session = booked_today(series["id"])
    assert_ok(action(fd, session, "check-in", ATTESTATION))
    assert_problem(action(fd, session, "check-in", ATTESTATION), 409, "invalid_state")


# --- series cancel -----------------------------------------------------------------------------


def test_cancelling_a_series_cancels_its_future_booked_sessions(fd, series, provider, at):
    done = past_session(series["id"], provider, starts_at=at(-30), status=SessionStatus.COMPLETED)
    future = [booked(fd, series["id"], provider, at(days)) for days in (2, 30)]

    body = assert_ok(fd.post(f"{SERIES}{series['id']}/cancel/", {}, format="json"))
    assert_series_shape(body)
    assert body["status"] == "cancelled"
    assert get_series(fd, series["id"])["status"] == "cancelled"
    for session in future:
        assert get_session(fd, session["id"])["status"] == "cancelled"
    assert get_session(fd, done)["status"] == "completed"

    # Nothing more is booked into a cancelled series; the time it held is free.
    refused = book(fd, series["id"], provider, at(60))
    assert (refused.status_code, refused.json()["code"]) == (409, "invalid_state")
    other = create_series(fd, series["patient"], indication="fine_lines_wrinkles")
    assert booked(fd, other["id"], provider, at(2))["status"] == "booked"


def test_cancelling_a_cancelled_series_is_409_invalid_state(fd, series):
    assert_ok(fd.post(f"{SERIES}{series['id']}/cancel/", {}, format="json"))
    assert_problem(
        fd.post(f"{SERIES}{series['id']}/cancel/", {}, format="json"), 409, "invalid_state"
    )


def test_booking_into_a_cancelled_series_is_409_invalid_state(fd, series, provider, at):
    assert_ok(fd.post(f"{SERIES}{series['id']}/cancel/", {}, format="json"))
    assert_problem(book(fd, series["id"], provider, at(3)), 409, "invalid_state")


# --- the day view and filters ------------------------------------------------------------------


def test_the_day_view_is_a_day_in_the_clinics_time_zone(fd, make_series, make_provider, at, today):
    """New York: 23:30 local is 03:30 or 04:30 UTC the next day, and 00:30 local the day after
    is still the evening before in UTC."""
    day = today + timedelta(days=5)
    early = booked(fd, make_series()["id"], make_provider(), at(5, 0, 30))
    late = booked(fd, make_series()["id"], make_provider(), at(5, 23, 30))
    next_day = booked(fd, make_series()["id"], make_provider(), at(6, 0, 30))
    day_before = booked(fd, make_series()["id"], make_provider(), at(4, 23, 30))

    assert ids(listed(fd, SESSIONS, date=day.isoformat())) == {early["id"], late["id"]}
    assert ids(listed(fd, SESSIONS, date=(day + timedelta(days=1)).isoformat())) == {next_day["id"]}
    assert ids(listed(fd, SESSIONS, date=(day - timedelta(days=1)).isoformat())) == {
        day_before["id"]
    }
    for row in listed(fd, SESSIONS, date=day.isoformat()):
        assert_session_shape(row)


def test_the_day_view_on_a_dst_day(api, front_desk, make_user, clinic):
    """2030-03-10 is the spring-forward Sunday in New York: the local day is 23 hours long."""
    zone = ZoneInfo("America/New_York")
    with time_machine.travel(datetime(2030, 3, 1, 15, tzinfo=ZoneInfo("UTC")), tick=True):
        client = api(front_desk)

        def new_booking(local: datetime) -> dict:
            patient = create_patient(client)
            screen(client, patient["id"])
            series = create_series(client, patient["id"])
            return booked(client, series["id"], make_user(Role.PROVIDER, clinic), local)

        before = new_booking(datetime(2030, 3, 9, 23, 30, tzinfo=zone))
        first = new_booking(datetime(2030, 3, 10, 0, 30, tzinfo=zone))  # EST, -05:00
        last = new_booking(datetime(2030, 3, 10, 23, 30, tzinfo=zone))  # EDT, -04:00
        after = new_booking(datetime(2030, 3, 11, 0, 15, tzinfo=zone))

        assert ids(listed(client, SESSIONS, date="2030-03-10")) == {first["id"], last["id"]}
        assert ids(listed(client, SESSIONS, date="2030-03-09")) == {before["id"]}
        assert ids(listed(client, SESSIONS, date="2030-03-11")) == {after["id"]}


def test_a_bad_date_is_400_invalid(fd):
    assert_problem(fd.get(SESSIONS, {"date": "not-a-date"}), 400, "invalid", errors=ANY)


def test_sessions_filter_by_provider_patient_series_status_and_flagged(
    fd, patient, make_series, make_provider, at
):
    alice, bob = make_provider(), make_provider()
    series = create_series(fd, patient["id"])
    a1 = booked(fd, series["id"], alice, at(2))
    a2 = booked(fd, series["id"], bob, at(100))  # after the screening lapses: flagged
    other_series = make_series()
    b1 = booked(fd, other_series["id"], bob, at(2))
    b2 = booked(fd, other_series["id"], alice, at(30))
    assert_ok(action(fd, b2["id"], "cancel", {"reason": "x"}))

    assert ids(listed(fd, SESSIONS, provider=str(alice.id))) == {a1["id"], b2["id"]}
    assert ids(listed(fd, SESSIONS, provider=str(bob.id))) == {a2["id"], b1["id"]}
    assert ids(listed(fd, SESSIONS, patient=patient["id"])) == {a1["id"], a2["id"]}
    assert ids(listed(fd, SESSIONS, series=other_series["id"])) == {b1["id"], b2["id"]}
    assert ids(listed(fd, SESSIONS, status="cancelled")) == {b2["id"]}
    assert ids(listed(fd, SESSIONS, status="booked")) == {a1["id"], a2["id"], b1["id"]}
    assert ids(listed(fd, SESSIONS, flagged="true")) == {a2["id"]}
    assert ids(listed(fd, SESSIONS, provider=str(bob.id), patient=patient["id"])) == {a2["id"]}
    assert ids(listed(fd, SESSIONS)) == {a1["id"], a2["id"], b1["id"], b2["id"]}


# --- clinic isolation --------------------------------------------------------------------------


@pytest.fixture
def elsewhere(api, make_user, other_clinic):
    """A series and a booked session of another clinic, made through its own staff."""
    client = api(make_user(Role.FRONT_DESK, other_clinic))
    their_provider = make_user(Role.PROVIDER, other_clinic)
    patient = create_patient(client)
    screen(client, patient["id"])
    series = create_series(client, patient["id"])
    zone = ZoneInfo(other_clinic.timezone)
    starts_at = datetime.combine(
        timezone.localdate(timezone=zone) + timedelta(days=3), time(10), zone
    )
    session = booked(client, series["id"], their_provider, starts_at)
    return {"series": series, "session": session, "patient": patient, "provider": their_provider}


def test_another_clinics_series_and_sessions_are_404(api, admin, fd, elsewhere, at):
    series_id, session_id = elsewhere["series"]["id"], elsewhere["session"]["id"]
    client = api(admin)
    assert_problem(client.get(f"{SERIES}{series_id}/"), 404, "not_found")
    assert_problem(client.get(f"{SESSIONS}{session_id}/"), 404, "not_found")
    assert_problem(client.post(f"{SERIES}{series_id}/cancel/", {}, format="json"), 404, "not_found")
    for name, data in [
        ("reschedule", {"starts_at": at(4).isoformat()}),
        ("cancel", {"reason": "x"}),
        ("check-in", {}),
        ("no-show", {}),
    ]:
        assert_problem(action(client, session_id, name, data), 404, "not_found")
    assert listed(fd, SERIES) == []
    assert listed(fd, SESSIONS) == []
    assert listed(fd, SESSIONS, series=series_id) == []


def test_another_clinics_ids_in_a_body_are_refused_like_unknown_ids(
    fd, patient, series, provider, elsewhere, at
):
    """The contract fixes 404 for another clinic's object in a path; in a body it only says the
    object must be answered "as if it did not exist", so compare with a random id."""

    def answer(response):
        return response.status_code, response.json().get("code")

    def series_for(patient_id):
        body = {"patient": patient_id, "indication": "acne_scars", "planned_sessions": 3}
        return answer(fd.post(SERIES, body, format="json"))

    theirs, unknown = series_for(elsewhere["patient"]["id"]), series_for(str(uuid.uuid4()))
    assert theirs == unknown
    assert theirs[0] in {400, 404}

    theirs = answer(book(fd, elsewhere["series"]["id"], provider, at(3)))
    unknown = answer(book(fd, str(uuid.uuid4()), provider, at(3)))
    assert theirs == unknown
    assert theirs[0] in {400, 404}

    theirs = answer(book(fd, series["id"], elsewhere["provider"], at(3)))
    assert theirs[0] in {400, 404}
    assert listed(fd, SESSIONS) == []


# --- Idempotency-Key ---------------------------------------------------------------------------


def test_a_replayed_booking_answers_the_first_response_and_books_once(fd, series, provider, at):
    body = booking(series["id"], provider, at(3))
    first = fd.post(SESSIONS, body, format="json", HTTP_IDEMPOTENCY_KEY="book-1")
    again = fd.post(SESSIONS, body, format="json", HTTP_IDEMPOTENCY_KEY="book-1")
    assert first.status_code == 201, first.content
    assert (again.status_code, again.json()) == (201, first.json())
    assert ids(listed(fd, SESSIONS, series=series["id"])) == {first.json()["id"]}
    assert get_series(fd, series["id"])["sessions_booked"] == 1

    # Without the key the same body is a new booking, and now the time is taken.
    assert_problem(fd.post(SESSIONS, body, format="json"), 409, "provider_unavailable")


def test_the_same_booking_key_with_another_body_is_422_idempotency_key_reused(
    fd, series, provider, at
):
    first = fd.post(
        SESSIONS, booking(series["id"], provider, at(3)), format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert first.status_code == 201
    other = fd.post(
        SESSIONS, booking(series["id"], provider, at(40)), format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert_problem(other, 422, "idempotency_key_reused")
    assert ids(listed(fd, SESSIONS)) == {first.json()["id"]}


def test_a_replayed_series_creation_creates_one_series(fd, patient):
    body = {"patient": patient["id"], "indication": "acne_scars", "planned_sessions": 3}
    first = fd.post(SERIES, body, format="json", HTTP_IDEMPOTENCY_KEY="series-1")
    again = fd.post(SERIES, body, format="json", HTTP_IDEMPOTENCY_KEY="series-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert ids(listed(fd, SERIES)) == {first.json()["id"]}


def test_a_session_is_moved_over_its_own_time_and_within_a_full_series(
    fd, series, provider, make_room, at
):
    """Reschedule runs the booking checks against the other sessions, never the one moved."""
    room = make_room()
    sessions = [
        booked(fd, series["id"], provider, at(days), room=room["id"]) for days in (2, 30, 60)
    ]
    first = sessions[0]
    # Half an hour later: overlaps only its own old slot.
    moved = assert_ok(
        action(fd, first["id"], "reschedule", {"starts_at": at(2, 10, 30).isoformat()})
    )
    assert instant(moved["starts_at"]) == at(2, 10, 30)
    # A day later, still 21+ days from the next one, in a series whose places are all taken.
    moved = assert_ok(action(fd, first["id"], "reschedule", {"starts_at": at(3).isoformat()}))
    assert (moved["number"], moved["status"], moved["room"]) == (1, "booked", room["id"])
    assert get_series(fd, series["id"])["sessions_booked"] == 3


def test_an_unknown_session_or_series_is_404(fd):
    missing = str(uuid.uuid4())
    assert_problem(fd.get(f"{SESSIONS}{missing}/"), 404, "not_found")
    assert_problem(fd.get(f"{SERIES}{missing}/"), 404, "not_found")
    assert_problem(action(fd, missing, "check-in"), 404, "not_found")
