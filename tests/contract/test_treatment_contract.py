"""Black-box checks of the v1 contract's treatment records, tip lots, recall and aftercare.

Issue 5: "Sessions" (treatment, aftercare) and "Tip lots" in ../shared/api-contract.md, and
every error code of the contract's table that they own. Expectations come from the contract,
not from the implementation. Everything goes through the API except what the API cannot do:
a session that is happening now (booking in the past is refused) and a screening taken long ago.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from unittest.mock import ANY
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from clinic.models import Role
from patients.models import Patient
from scheduling.models import Series, SessionStatus
from tests.factories import ScreeningFactory, SessionFactory
from tests.factories.scheduling import ATTESTATION, starts_today
from tests.helpers import PROBLEM, assert_ok, assert_problem, assert_uuid, instant

PATIENTS = "/api/v1/patients/"
SERIES = "/api/v1/series/"
SESSIONS = "/api/v1/sessions/"
TIP_LOTS = "/api/v1/tip-lots/"
HANDPIECES = "/api/v1/handpieces/"
TEMPLATES = "/api/v1/aftercare-templates/"
NOTIFICATIONS = "/api/v1/notifications/"

LOT_FIELDS = {
    "id",
    "lot_number",
    "expires_on",
    "quantity_received",
    "quantity_used",
    "quantity_remaining",
    "status",
}
RECORD_FIELDS = {
    "id",
    "session",
    "tip_lot",
    "lot_number",
    "handpiece",
    "depths",
    "performed_at",
    "provider",
}
AREAS = ["forehead", "temples", "cheeks", "nose", "perioral", "chin", "jawline", "neck"]

pytestmark = pytest.mark.django_db

_serial = itertools.count(500)


# --- helpers -----------------------------------------------------------------------------------


def page(client: APIClient, path: str, **params) -> list[dict]:
    body = assert_ok(client.get(path, {"page_size": 200, **params}))
    assert set(body) >= {"results", "next", "previous"}, body
    assert body["next"] is None
    return body["results"]


def create_patient(client: APIClient, **overrides) -> dict:
    n = next(_serial)
    body = {
        "first_name": f"Bea{n}",
        "last_name": f"Lopez{n}",
        "date_of_birth": "1988-02-11",
        "email": f"bea{n}@example.com",
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


def receive(client: APIClient, **overrides):
    body = {
        "lot_number": f"LOT-{next(_serial)}",
        "expires_on": (timezone.localdate() + timedelta(days=365)).isoformat(),
        "quantity_received": 10,
        **overrides,
    }
    return client.post(TIP_LOTS, body, format="json")


def received(client: APIClient, **overrides) -> dict:
    return assert_ok(receive(client, **overrides), 201)


def lot_now(client: APIClient, lot_id: str) -> dict:
    rows = [row for row in page(client, TIP_LOTS) if row["id"] == lot_id]
    assert len(rows) == 1, rows
    return rows[0]


def treatment_path(session_id: str) -> str:
    return f"{SESSIONS}{session_id}/treatment/"


def treatment_body(lot: dict, **overrides) -> dict:
    return {
        "tip_lot": lot["id"],
        "depths": [
            {"area": "cheeks", "depth_mm": "1.25"},
            {"area": "forehead", "depth_mm": 0.5},
        ],
        "notes": "Tolerated well.",
        **overrides,
    }


def treat(client: APIClient, session_id: str, lot: dict, **overrides):
    return client.post(treatment_path(session_id), treatment_body(lot, **overrides), format="json")


def treated(client: APIClient, session_id: str, lot: dict, **overrides) -> dict:
    return assert_ok(treat(client, session_id, lot, **overrides), 201)


def session_status(client: APIClient, session_id: str) -> str:
    return assert_ok(client.get(f"{SESSIONS}{session_id}/"))["status"]


def depth_pairs(record: dict) -> set[tuple[str, str]]:
    return {(d["area"], d["depth_mm"]) for d in record["depths"]}


def assert_record_shape(record: dict) -> None:
    assert set(record) >= RECORD_FIELDS, RECORD_FIELDS - set(record)
    for field in ("id", "session", "tip_lot", "provider"):
        assert_uuid(record[field])
    if record["handpiece"] is not None:
        assert_uuid(record["handpiece"])
    assert isinstance(record["lot_number"], str) and record["lot_number"]
    instant(record["performed_at"])
    assert isinstance(record["depths"], list) and record["depths"]
    for depth in record["depths"]:
        assert {"area", "depth_mm"} <= set(depth), depth
        assert depth["area"] in AREAS
        assert isinstance(depth["depth_mm"], str), depth
        assert len(depth["depth_mm"].split(".")[1]) == 2, depth


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def zone(clinic) -> ZoneInfo:
    return ZoneInfo(clinic.timezone)


@pytest.fixture
def today(zone) -> date:
    return timezone.localdate(timezone=zone)


@pytest.fixture
def fd(api, front_desk) -> APIClient:
    return api(front_desk)


@pytest.fixture
def prov(api, provider) -> APIClient:
    return api(provider)


@pytest.fixture
def adm(api, admin) -> APIClient:
    return api(admin)


@pytest.fixture
def lot(prov, today) -> dict:
    return received(prov, expires_on=(today + timedelta(days=365)).isoformat())


@pytest.fixture
def eligible_patient(fd):
    def make() -> dict:
        patient = create_patient(fd)
        screen(fd, patient["id"])
        return patient

    return make


@pytest.fixture
def make_session(fd, clinic, provider, eligible_patient):
    """A session of an eligible patient on the clinic's today (tests.factories.starts_today:
    half an hour ago, each further one two hours earlier), checked in through the API unless
    asked not to. Booking in the past is refused, so the session row itself is written
    directly; its series and patient come from the API."""
    starts = starts_today(clinic)

    def make(
        *,
        series: dict | None = None,
        patient: dict | None = None,
        check_in=True,
        starts_at: datetime | None = None,
    ) -> dict:
        if series is None:
            series = create_series(fd, (patient or eligible_patient())["id"])
        starts_at = starts_at or next(starts)
        session = SessionFactory(
            series=Series.objects.get(pk=series["id"]),
            provider=provider,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=1),
            status=SessionStatus.BOOKED,
            created_by=provider,
        )
        if check_in:
            assert assert_ok(
                fd.post(f"{SESSIONS}{session.id}/check-in/", ATTESTATION, format="json")
            )["status"] == ("checked_in")
        return assert_ok(fd.get(f"{SESSIONS}{session.id}/"))

    return make


@pytest.fixture
def session(make_session) -> dict:
    return make_session()


# --- tip lots ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.PROVIDER, Role.ADMIN])
def test_admin_and_provider_receive_a_lot_with_the_contract_fields(staff_by_role, api, role, today):
    client = api(staff_by_role[role])
    expires_on = (today + timedelta(days=200)).isoformat()
    body = assert_ok(
        client.post(
            TIP_LOTS,
            {"lot_number": "SP-2291A", "expires_on": expires_on, "quantity_received": 24},
            format="json",
        ),
        201,
    )
    assert set(body) >= LOT_FIELDS
    assert_uuid(body["id"])
    assert {k: body[k] for k in LOT_FIELDS - {"id"}} == {
        "lot_number": "SP-2291A",
        "expires_on": expires_on,
        "quantity_received": 24,
        "quantity_used": 0,
        "quantity_remaining": 24,
        "status": "active",
    }
    for reader in (Role.ADMIN, Role.FRONT_DESK, Role.PROVIDER, Role.AUDITOR):
        assert lot_now(api(staff_by_role[reader]), body["id"]) == body


def test_a_lot_takes_an_optional_gtin(prov):
    assert received(prov, gtin="00812345678906")["lot_number"].startswith("LOT-")


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.AUDITOR])
def test_front_desk_and_auditor_cannot_receive_lots(staff_by_role, api, prov, role):
    assert_problem(receive(api(staff_by_role[role])), 403, "permission_denied")
    assert page(prov, TIP_LOTS) == []


def test_a_lot_number_is_unique_within_a_clinic(prov, api, make_user, other_clinic):
    first = received(prov, lot_number="SP-7")
    assert_problem(receive(prov, lot_number="SP-7"), 400, "invalid", errors=ANY)
    assert [row["id"] for row in page(prov, TIP_LOTS)] == [first["id"]]
    # Another clinic has its own stock and its own numbers.
    elsewhere = api(make_user(Role.PROVIDER, other_clinic))
    assert received(elsewhere, lot_number="SP-7")["lot_number"] == "SP-7"


def test_a_lot_already_past_its_expiry_is_received_and_shows_expired(prov, today):
    body = received(prov, expires_on=(today - timedelta(days=3)).isoformat())
    assert body["status"] == "expired"
    assert lot_now(prov, body["id"])["status"] == "expired"


def test_a_lot_expiring_today_is_still_active(prov, today):
    assert received(prov, expires_on=today.isoformat())["status"] == "active"


@pytest.mark.parametrize(
    "changes",
    [
        {"quantity_received": -1},
        {"quantity_received": "ten"},
        {"expires_on": "soon"},
        {"expires_on": None},
        {"lot_number": ""},
    ],
    ids=["negative quantity", "quantity text", "bad date", "no date", "blank lot number"],
)
def test_a_bad_lot_is_400_invalid(prov, changes):
    assert_problem(receive(prov, **changes), 400, "invalid", errors=ANY)
    assert page(prov, TIP_LOTS) == []


# --- recording a treatment ---------------------------------------------------------------------


def test_a_treatment_is_recorded_with_the_contract_fields(prov, fd, session, lot, provider):
    before = timezone.now()
    record = treated(prov, session["id"], lot)
    assert_record_shape(record)
    assert record["session"] == session["id"]
    assert record["tip_lot"] == lot["id"]
    assert record["lot_number"] == lot["lot_number"]
    assert record["handpiece"] is None
    assert record["provider"] == str(provider.id)
    assert depth_pairs(record) == {("cheeks", "1.25"), ("forehead", "0.50")}
    assert before - timedelta(seconds=5) <= instant(record["performed_at"]) <= timezone.now()

    # The session is completed and the lot has one cartridge fewer.
    assert session_status(fd, session["id"]) == "completed"
    stock = lot_now(prov, lot["id"])
    assert (stock["quantity_used"], stock["quantity_remaining"]) == (1, 9)
    # GET on the same path returns the record, to every role.
    for client in (prov, fd):
        assert assert_ok(client.get(treatment_path(session["id"]))) == record


def test_the_record_names_the_handpiece_and_keeps_a_given_performed_at(prov, adm, session, lot):
    handpiece = assert_ok(adm.post(HANDPIECES, {"serial_number": "SP-HP-1"}, format="json"), 201)
    performed_at = (timezone.now() - timedelta(minutes=10)).replace(microsecond=0)
    record = treated(
        prov, session["id"], lot, handpiece=handpiece["id"], performed_at=performed_at.isoformat()
    )
    assert record["handpiece"] == handpiece["id"]
    assert instant(record["performed_at"]) == performed_at


def test_a_booked_session_not_yet_checked_in_is_409_invalid_state(prov, fd, make_session, lot):
    # v1 clarified: treatment happens in the chair, after check-in.
    session = make_session(check_in=False)
    assert session["status"] == "booked"
    assert_problem(treat(prov, session["id"], lot), 409, "invalid_state")
    assert session_status(fd, session["id"]) == "booked"
    assert lot_now(prov, lot["id"])["quantity_used"] == 0


def test_a_performed_at_in_the_future_is_400_invalid(prov, fd, session, lot):
    future = (timezone.now() + timedelta(hours=2)).isoformat()
    assert_problem(treat(prov, session["id"], lot, performed_at=future), 400, "invalid", errors=ANY)
    assert session_status(fd, session["id"]) == "checked_in"
    assert lot_now(prov, lot["id"])["quantity_used"] == 0


# --- depths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "returned"),
    [
        ("1.25", "1.25"),
        (1.25, "1.25"),
        (1, "1.00"),
        (1.0, "1.00"),
        ("1", "1.00"),
        (0.25, "0.25"),
        ("0.5", "0.50"),
        (1.5, "1.50"),
        ("1.500", "1.50"),
    ],
)
def test_depth_is_accepted_as_string_or_number_and_returned_with_two_decimals(
    prov, session, lot, given, returned
):
    record = treated(prov, session["id"], lot, depths=[{"area": "nose", "depth_mm": given}])
    assert depth_pairs(record) == {("nose", returned)}


def test_every_area_of_the_contract_is_accepted(prov, session, lot):
    depths = [{"area": area, "depth_mm": "0.75"} for area in AREAS]
    record = treated(prov, session["id"], lot, depths=depths)
    assert depth_pairs(record) == {(area, "0.75") for area in AREAS}


@pytest.mark.parametrize(
    "depth",
    [
        {"area": "eyelids", "depth_mm": "0.5"},
        {"area": "scalp", "depth_mm": "0.5"},
        {"area": "", "depth_mm": "0.5"},
        {"area": "cheeks", "depth_mm": "1.3"},
        {"area": "cheeks", "depth_mm": 1.1},
        {"area": "cheeks", "depth_mm": "0.1"},
        {"area": "cheeks", "depth_mm": 0},
        {"area": "cheeks", "depth_mm": "-0.25"},
        {"area": "cheeks", "depth_mm": "2.75"},
        {"area": "cheeks", "depth_mm": 3},
        {"area": "cheeks", "depth_mm": "deep"},
        {"area": "cheeks", "depth_mm": None},
        {"area": "cheeks", "depth_mm": [1.25]},
        {"area": "cheeks"},
        {"area": 7, "depth_mm": "1.0"},
    ],
    ids=[
        "eyelids",
        "unknown area",
        "blank area",
        "1.3 not a step",
        "1.1 number not a step",
        "0.1 not a step",
        "zero",
        "negative",
        "2.75 above range",
        "3 above range",
        "text",
        "null",
        "list",
        "missing depth",
        "area a number",
    ],
)
def test_a_bad_depth_is_400_invalid_and_changes_nothing(prov, fd, session, lot, depth):
    response = treat(
        prov,
        session["id"],
        lot,
        depths=[depth],
        depth_override_reason="Deep atrophic scars, discussed with patient.",
    )
    assert_problem(response, 400, "invalid", errors=ANY)
    assert session_status(fd, session["id"]) == "checked_in"
    assert lot_now(prov, lot["id"])["quantity_used"] == 0
    assert page(prov, f"{TIP_LOTS}{lot['id']}/usage/") == []


@pytest.mark.parametrize(
    "body_change",
    [{"depths": "cheeks 1.25"}, {"depths": None}, {"tip_lot": None}, {"tip_lot": "LOT-1"}],
    ids=["depths not a list", "depths null", "no lot", "lot not an id"],
)
def test_a_malformed_treatment_body_is_400_invalid(prov, fd, session, lot, body_change):
    assert_problem(treat(prov, session["id"], lot, **body_change), 400, "invalid", errors=ANY)
    assert session_status(fd, session["id"]) == "checked_in"


@pytest.mark.parametrize("depth", ["1.75", 2, "2.5"])
def test_above_1_5_mm_without_a_reason_is_422_depth_not_allowed(prov, fd, session, lot, depth):
    depths = [{"area": "cheeks", "depth_mm": depth}, {"area": "chin", "depth_mm": "1.0"}]
    assert_problem(treat(prov, session["id"], lot, depths=depths), 422, "depth_not_allowed")
    assert session_status(fd, session["id"]) == "checked_in"
    assert lot_now(prov, lot["id"])["quantity_used"] == 0

    record = treated(
        prov,
        session["id"],
        lot,
        depths=depths,
        depth_override_reason="Deep rolling scars; patient consented.",
    )
    assert depth_pairs(record) == {("cheeks", f"{Decimal(str(depth)):.2f}"), ("chin", "1.00")}


def test_1_5_mm_needs_no_reason(prov, session, lot):
    record = treated(prov, session["id"], lot, depths=[{"area": "cheeks", "depth_mm": "1.5"}])
    assert depth_pairs(record) == {("cheeks", "1.50")}


# --- one tip, once: the lot rules --------------------------------------------------------------


def test_recording_a_session_twice_is_409_session_already_recorded(prov, session, lot):
    first = treated(prov, session["id"], lot)
    other_lot = received(prov)
    assert_problem(treat(prov, session["id"], lot), 409, "session_already_recorded")
    assert_problem(treat(prov, session["id"], other_lot), 409, "session_already_recorded")
    assert lot_now(prov, lot["id"])["quantity_used"] == 1
    assert lot_now(prov, other_lot["id"])["quantity_used"] == 0
    assert assert_ok(prov.get(treatment_path(session["id"]))) == first


def test_a_lot_with_no_cartridge_left_is_409_tip_lot_exhausted(prov, fd, make_session):
    lot = received(prov, quantity_received=1)
    first, second = make_session(), make_session()
    treated(prov, first["id"], lot)
    stock = lot_now(prov, lot["id"])
    assert (stock["quantity_used"], stock["quantity_remaining"], stock["status"]) == (
        1,
        0,
        "exhausted",
    )
    assert_problem(treat(prov, second["id"], lot), 409, "tip_lot_exhausted")
    assert session_status(fd, second["id"]) == "checked_in"
    assert lot_now(prov, lot["id"])["quantity_remaining"] == 0


def test_an_expired_lot_is_422_tip_lot_expired(prov, fd, session, today):
    lot = received(prov, expires_on=(today - timedelta(days=1)).isoformat())
    assert_problem(treat(prov, session["id"], lot), 422, "tip_lot_expired")
    assert session_status(fd, session["id"]) == "checked_in"
    assert lot_now(prov, lot["id"])["quantity_used"] == 0


def test_a_lot_expiring_on_the_treatment_date_may_be_used(prov, session, today):
    lot = received(prov, expires_on=today.isoformat())
    assert treated(prov, session["id"], lot)["tip_lot"] == lot["id"]


def test_a_recalled_lot_is_422_tip_lot_recalled(prov, adm, fd, session, lot):
    assert_ok(adm.post(f"{TIP_LOTS}{lot['id']}/recall/", {"reason": "Supplier notice"}))
    assert lot_now(prov, lot["id"])["status"] == "recalled"
    assert_problem(treat(prov, session["id"], lot), 422, "tip_lot_recalled")
    assert session_status(fd, session["id"]) == "checked_in"
    assert lot_now(prov, lot["id"])["quantity_used"] == 0


# --- session state and eligibility at treatment ------------------------------------------------


@pytest.mark.parametrize("ended_as", ["cancel", "no-show"])
def test_treating_a_cancelled_or_no_show_session_is_409_invalid_state(
    prov, fd, make_session, lot, ended_as
):
    session = make_session()
    ended = assert_ok(fd.post(f"{SESSIONS}{session['id']}/{ended_as}/", {"reason": "x"}))
    assert_problem(treat(prov, session["id"], lot), 409, "invalid_state")
    assert session_status(fd, session["id"]) == ended["status"]
    assert lot_now(prov, lot["id"])["quantity_used"] == 0


def test_a_completed_session_cannot_be_cancelled(prov, fd, session, lot):
    treated(prov, session["id"], lot)
    response = fd.post(f"{SESSIONS}{session['id']}/cancel/", {"reason": "x"}, format="json")
    assert_problem(response, 409, "invalid_state")
    assert session_status(fd, session["id"]) == "completed"


def test_a_contraindication_found_after_booking_is_422_patient_not_eligible(
    prov, fd, eligible_patient, make_session, lot
):
    patient = eligible_patient()
    session = make_session(patient=patient)
    screen(fd, patient["id"], pregnant_or_nursing=True)
    body = assert_problem(treat(prov, session["id"], lot), 422, "patient_not_eligible")
    assert body.get("reasons") == ["pregnant_or_nursing"], body
    assert session_status(fd, session["id"]) == "checked_in"
    assert lot_now(prov, lot["id"])["quantity_used"] == 0


def test_an_expired_screening_blocks_treatment(prov, fd, front_desk, make_session, lot, today):
    """Booking goes ahead of an expired screening (flagged); treatment never does."""
    patient = create_patient(fd)
    ScreeningFactory(
        patient=Patient.objects.get(pk=patient["id"]),
        screened_by=front_desk,
        screened_on=today - timedelta(days=100),
        screened_at=timezone.now() - timedelta(days=100),
    )
    session = make_session(patient=patient)
    body = assert_problem(treat(prov, session["id"], lot), 422, "patient_not_eligible")
    assert body.get("reasons") == ["screening_expired"], body
    assert lot_now(prov, lot["id"])["quantity_used"] == 0


# --- roles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.AUDITOR])
def test_front_desk_and_auditor_never_record_treatment(
    staff_by_role, api, fd, prov, session, lot, role
):
    assert_problem(treat(api(staff_by_role[role]), session["id"], lot), 403, "permission_denied")
    assert session_status(fd, session["id"]) == "checked_in"
    assert lot_now(prov, lot["id"])["quantity_used"] == 0


def test_every_role_reads_a_treatment_and_its_aftercare(staff_by_role, api, prov, session, lot):
    record = treated(prov, session["id"], lot)
    for user in staff_by_role.values():
        client = api(user)
        assert assert_ok(client.get(treatment_path(session["id"]))) == record
        assert (
            assert_ok(client.get(f"{SESSIONS}{session['id']}/aftercare/"))["session"]
            == (session["id"])
        )


@pytest.mark.parametrize("role", [Role.PROVIDER, Role.FRONT_DESK, Role.AUDITOR])
def test_only_admin_recalls(staff_by_role, api, prov, lot, role):
    response = api(staff_by_role[role]).post(
        f"{TIP_LOTS}{lot['id']}/recall/", {"reason": "Supplier notice"}, format="json"
    )
    assert_problem(response, 403, "permission_denied")
    assert lot_now(prov, lot["id"])["status"] == "active"


# --- the series completes ----------------------------------------------------------------------


def test_the_series_completes_when_its_last_planned_session_is_treated(
    prov, fd, clinic, eligible_patient, make_session, lot
):
    series = create_series(fd, eligible_patient()["id"], planned_sessions=3)
    # The series' sessions are treated on their own days, its interval apart (v1 clarified).
    first = next(starts_today(clinic))
    sessions = [
        make_session(series=series, starts_at=first - timedelta(days=days)) for days in (60, 30, 0)
    ]
    for done, session in enumerate(sessions[:2], start=1):
        treated(prov, session["id"], lot, performed_at=session["starts_at"])
        body = assert_ok(fd.get(f"{SERIES}{series['id']}/"))
        assert (body["status"], body["sessions_completed"]) == ("active", done)
    treated(prov, sessions[2]["id"], lot)
    body = assert_ok(fd.get(f"{SERIES}{series['id']}/"))
    assert (body["status"], body["sessions_completed"], body["sessions_booked"]) == (
        "completed",
        3,
        0,
    )
    assert {s["status"] for s in page(fd, SESSIONS, series=series["id"])} == {"completed"}


# --- aftercare ---------------------------------------------------------------------------------


def assert_steps(steps) -> list[dict]:
    assert isinstance(steps, list) and steps
    for step in steps:
        assert {"day_offset", "product", "instruction"} <= set(step), step
        assert isinstance(step["day_offset"], int) and step["day_offset"] >= 0
        assert isinstance(step["product"], str)
        assert isinstance(step["instruction"], str) and step["instruction"]
    return [{k: step[k] for k in ("day_offset", "product", "instruction")} for step in steps]


def test_a_treatment_gets_an_aftercare_plan(prov, session, lot):
    treated(prov, session["id"], lot)
    body = assert_ok(prov.get(f"{SESSIONS}{session['id']}/aftercare/"))
    assert set(body) >= {"session", "steps"}
    assert body["session"] == session["id"]
    assert_steps(body["steps"])


OUR_STEPS = [
    {"day_offset": 0, "product": "Skinfuse Lift HG", "instruction": "Reapply as needed."},
    {"day_offset": 1, "product": "", "instruction": "Sunscreen again from today."},
    {"day_offset": 3, "product": "", "instruction": "Exercise again from today."},
]


def test_aftercare_is_the_clinics_template_as_it_was_at_treatment(adm, prov, make_session, lot):
    template = assert_ok(
        adm.post(
            TEMPLATES,
            {"name": "Our protocol", "is_default": True, "steps": OUR_STEPS},
            format="json",
        ),
        201,
    )
    first = make_session()
    treated(prov, first["id"], lot)
    plan = assert_ok(prov.get(f"{SESSIONS}{first['id']}/aftercare/"))
    assert assert_steps(plan["steps"]) == OUR_STEPS

    new_steps = [{"day_offset": 0, "product": "", "instruction": "Rest."}]
    assert_ok(adm.patch(f"{TEMPLATES}{template['id']}/", {"steps": new_steps}, format="json"))
    second = make_session()
    treated(prov, second["id"], lot)
    assert (
        assert_steps(assert_ok(prov.get(f"{SESSIONS}{second['id']}/aftercare/"))["steps"])
        == new_steps
    )
    # The earlier patient's plan is a snapshot: the edit does not rewrite it.
    assert assert_ok(prov.get(f"{SESSIONS}{first['id']}/aftercare/")) == plan


# --- recall and usage --------------------------------------------------------------------------


def test_a_recall_names_every_affected_patient_and_session(
    adm, prov, fd, eligible_patient, make_session, lot
):
    ana, ben = eligible_patient(), eligible_patient()
    ana_1 = make_session(patient=ana)
    ana_2 = make_session(series=create_series(fd, ana["id"], indication="fine_lines_wrinkles"))
    ben_1 = make_session(patient=ben)
    untouched = make_session()
    other_lot = received(prov)
    for session in (ana_1, ana_2, ben_1):
        treated(prov, session["id"], lot)
    treated(prov, untouched["id"], other_lot)

    before = timezone.now()
    response = adm.post(f"{TIP_LOTS}{lot['id']}/recall/", {"reason": "Sterility"}, format="json")
    body = assert_ok(response)
    assert set(body) >= {"lot_number", "recalled_at", "affected_sessions", "affected_patients"}
    assert body["lot_number"] == lot["lot_number"]
    assert before - timedelta(seconds=5) <= instant(body["recalled_at"]) <= timezone.now()

    expected_sessions = {ana_1["id"], ana_2["id"], ben_1["id"]}
    # Ambiguous in the contract: a count or the list of session ids. Either must agree.
    affected = body["affected_sessions"]
    if isinstance(affected, list):
        assert set(affected) == expected_sessions
    else:
        assert isinstance(affected, int) and affected == 3

    patients = {row["id"]: row for row in body["affected_patients"]}
    assert set(patients) == {ana["id"], ben["id"]}
    for source, sessions in ((ana, {ana_1["id"], ana_2["id"]}), (ben, {ben_1["id"]})):
        row = patients[source["id"]]
        assert set(row) >= {"id", "first_name", "last_name", "email", "phone", "sessions"}
        assert {k: row[k] for k in ("first_name", "last_name", "email", "phone")} == {
            k: source[k] for k in ("first_name", "last_name", "email", "phone")
        }
        assert isinstance(row["sessions"], list)
        assert set(row["sessions"]) == sessions
        assert len(row["sessions"]) == len(sessions)

    assert lot_now(prov, lot["id"])["status"] == "recalled"
    assert lot_now(prov, other_lot["id"])["status"] == "active"

    # A lot_recall notification is queued for each affected patient, and no one else.
    notified = {row["patient"] for row in page(adm, NOTIFICATIONS, kind="lot_recall")}
    assert notified == {ana["id"], ben["id"]}


def test_recalling_an_unused_lot_affects_no_one(adm, lot):
    body = assert_ok(adm.post(f"{TIP_LOTS}{lot['id']}/recall/", {"reason": "Damaged box"}))
    assert body["affected_patients"] == []
    assert body["affected_sessions"] in (0, [])
    assert page(adm, NOTIFICATIONS, kind="lot_recall") == []


def test_the_usage_list_is_the_treatments_that_used_the_lot(prov, make_session, lot):
    records = [treated(prov, make_session()["id"], lot) for _ in range(2)]
    other_lot = received(prov)
    treated(prov, make_session()["id"], other_lot)

    body = assert_ok(prov.get(f"{TIP_LOTS}{lot['id']}/usage/"))
    assert set(body) >= {"results", "next", "previous"}
    rows = {row["id"]: row for row in body["results"]}
    assert set(rows) == {record["id"] for record in records}
    for record in records:
        assert_record_shape(rows[record["id"]])
        assert {k: rows[record["id"]][k] for k in RECORD_FIELDS} == {
            k: record[k] for k in RECORD_FIELDS
        }
    assert page(prov, f"{TIP_LOTS}{received(prov)['id']}/usage/") == []


# --- clinic isolation --------------------------------------------------------------------------


@pytest.fixture
def elsewhere(api, make_user, other_clinic):
    """Another clinic's lot and its treated session, made through that clinic's own staff."""
    their_fd = api(make_user(Role.FRONT_DESK, other_clinic))
    their_provider = make_user(Role.PROVIDER, other_clinic)
    their_prov = api(their_provider)
    patient = create_patient(their_fd)
    screen(their_fd, patient["id"])
    series = create_series(their_fd, patient["id"])
    starts_at = next(starts_today(other_clinic))
    session = SessionFactory(
        series=Series.objects.get(pk=series["id"]),
        provider=their_provider,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=1),
        created_by=their_provider,
    )
    assert_ok(their_fd.post(f"{SESSIONS}{session.id}/check-in/", ATTESTATION, format="json"))
    lot = received(their_prov, lot_number="THEIRS-1")
    treated(their_prov, str(session.id), lot)
    untreated = SessionFactory(
        series=Series.objects.get(pk=series["id"]),
        provider=their_provider,
        starts_at=starts_at - timedelta(hours=3),
        ends_at=starts_at - timedelta(hours=2),
        created_by=their_provider,
    )
    return {"lot": lot, "session": str(session.id), "untreated": str(untreated.id)}


def test_another_clinics_lots_and_treatments_are_404(adm, prov, elsewhere, lot):
    lot_id = elsewhere["lot"]["id"]
    assert_problem(adm.get(f"{TIP_LOTS}{lot_id}/usage/"), 404, "not_found")
    assert_problem(
        adm.post(f"{TIP_LOTS}{lot_id}/recall/", {"reason": "x"}, format="json"), 404, "not_found"
    )
    assert_problem(adm.get(treatment_path(elsewhere["session"])), 404, "not_found")
    assert_problem(adm.get(f"{SESSIONS}{elsewhere['session']}/aftercare/"), 404, "not_found")
    assert_problem(treat(prov, elsewhere["untreated"], lot), 404, "not_found")
    assert [row["id"] for row in page(prov, TIP_LOTS)] == [lot["id"]]
    assert lot_now(prov, lot["id"])["quantity_used"] == 0


def test_another_clinics_lot_in_a_body_is_refused_like_an_unknown_one(
    prov, fd, make_session, elsewhere
):
    first, second = make_session(), make_session()
    theirs = treat(prov, first["id"], elsewhere["lot"])
    unknown = treat(prov, second["id"], {"id": str(uuid.uuid4())})
    assert (theirs.status_code, theirs.json()["code"]) == (
        unknown.status_code,
        unknown.json()["code"],
    )
    assert theirs.status_code == 400
    assert session_status(fd, first["id"]) == "checked_in"


# --- Idempotency-Key ---------------------------------------------------------------------------


def test_a_replayed_treatment_answers_the_first_response_and_records_once(prov, session, lot):
    body = treatment_body(lot)
    path = treatment_path(session["id"])
    first = prov.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="treat-1")
    again = prov.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="treat-1")
    assert first.status_code == 201, first.content
    assert (again.status_code, again.json()) == (201, first.json())
    assert lot_now(prov, lot["id"])["quantity_used"] == 1
    assert [row["id"] for row in page(prov, f"{TIP_LOTS}{lot['id']}/usage/")] == [
        first.json()["id"]
    ]
    # Without the key it is a second recording of the same session.
    assert_problem(prov.post(path, body, format="json"), 409, "session_already_recorded")


def test_a_replayed_lot_receipt_creates_one_lot(prov):
    body = {"lot_number": "SP-IDEM", "expires_on": "2099-01-31", "quantity_received": 5}
    first = prov.post(TIP_LOTS, body, format="json", HTTP_IDEMPOTENCY_KEY="lot-1")
    again = prov.post(TIP_LOTS, body, format="json", HTTP_IDEMPOTENCY_KEY="lot-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert [row["id"] for row in page(prov, TIP_LOTS)] == [first.json()["id"]]


# --- odds and ends -----------------------------------------------------------------------------


def test_treating_an_unknown_session_is_404(prov, lot):
    assert_problem(treat(prov, str(uuid.uuid4()), lot), 404, "not_found")
    assert lot_now(prov, lot["id"])["quantity_used"] == 0


@pytest.mark.parametrize("method", ["put", "patch"])
def test_a_recorded_treatment_is_never_edited_in_place(prov, session, lot, method):
    """Issue 5: PATCH/PUT answer 405; corrections are amendments."""
    record = treated(prov, session["id"], lot)
    response = getattr(prov, method)(
        treatment_path(session["id"]), {"notes": "changed"}, format="json"
    )
    assert response.status_code == 405, response.content
    assert response["Content-Type"] == PROBLEM
    assert assert_ok(prov.get(treatment_path(session["id"]))) == record


def test_every_role_reads_the_lots_usage(staff_by_role, api, prov, session, lot):
    record = treated(prov, session["id"], lot)
    for user in staff_by_role.values():
        rows = page(api(user), f"{TIP_LOTS}{lot['id']}/usage/")
        assert [row["id"] for row in rows] == [record["id"]]
