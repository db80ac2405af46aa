"""Black-box checks of v1.1 "Point of care" and the v1 / v1.1 clarifications it brings:
treatment only in the chair (checked in, on the session's day, the series' interval between
actual treatments), the screening's washout listed, the day-of attestation at check-in, and
the screening's warnings acknowledged at treatment. Every refusal answers the contract's exact
body and is audited.

Sessions on today are written directly (booking in the past is refused); everything else goes
through the API.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, time, timedelta
from unittest.mock import ANY

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from clinic.models import AuditEvent, Role
from scheduling.models import Series, SessionStatus
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.factories import SessionFactory
from tests.factories.scheduling import ATTESTATION, starts_today
from tests.helpers import assert_ok, assert_problem

PATIENTS = "/api/v1/patients/"
SERIES = "/api/v1/series/"
SESSIONS = "/api/v1/sessions/"
CLINIC = "/api/v1/clinic/"

_serial = itertools.count(700)


def create_patient(client) -> dict:
    n = next(_serial)
    body = {
        "first_name": f"Ines{n}",
        "last_name": f"Moreau{n}",
        "date_of_birth": "1987-04-02",
        "fitzpatrick_type": 3,
    }
    return assert_ok(client.post(PATIENTS, body, format="json"), 201)


def screen(client, patient_id: str, **answers) -> dict:
    return assert_ok(
        client.post(f"{PATIENTS}{patient_id}/screenings/", answers, format="json"), 201
    )


def check_in(client, session_id: str, body: dict | None = None, **headers):
    return client.post(
        f"{SESSIONS}{session_id}/check-in/",
        ATTESTATION if body is None else body,
        format="json",
        **headers,
    )


def treat(client, session_id: str, lot_id: str, **overrides):
    body = {"tip_lot": lot_id, "depths": [{"area": "cheeks", "depth_mm": "1.00"}], **overrides}
    return client.post(f"{SESSIONS}{session_id}/treatment/", body, format="json")


def status_of(client, session_id: str) -> str:
    return assert_ok(client.get(f"{SESSIONS}{session_id}/"))["status"]


def refusals(action: str) -> list[tuple[str, str, dict]]:
    return list(
        AuditEvent.objects.filter(action=action, outcome="denied")
        .order_by("at", "id")
        .values_list("object_id", "actor__username", "detail")
    )


@pytest.fixture
def fd(api, front_desk):
    return api(front_desk)


@pytest.fixture
def prov(api, provider):
    return api(provider)


@pytest.fixture
def lot(prov) -> dict:
    expires_on = (timezone.localdate() + timedelta(days=365)).isoformat()
    body = {"lot_number": "POC-1", "expires_on": expires_on, "quantity_received": 20}
    return assert_ok(prov.post("/api/v1/tip-lots/", body, format="json"), 201)


@pytest.fixture
def new_series(fd):
    def make(**answers) -> dict:
        patient = create_patient(fd)
        screen(fd, patient["id"], **answers)
        body = {"patient": patient["id"], "indication": "acne_scars", "planned_sessions": 3}
        return assert_ok(fd.post(SERIES, body, format="json"), 201)

    return make


@pytest.fixture
def session_today(clinic, provider, new_series):
    """session_today(series=None, starts_at=None): a booked session of the clinic's today (or
    at `starts_at`), of a new eligible patient's series unless given one."""
    starts = starts_today(clinic)

    def make(series: dict | None = None, starts_at: datetime | None = None) -> str:
        series = series or new_series()
        starts_at = starts_at or next(starts)
        return str(
            SessionFactory(
                series=Series.objects.get(pk=series["id"]),
                provider=provider,
                starts_at=starts_at,
                ends_at=starts_at + timedelta(hours=1),
                status=SessionStatus.BOOKED,
                created_by=provider,
            ).id
        )

    return make


@pytest.fixture
def in_chair(fd, session_today):
    """A session of today, checked in with a clear attestation."""

    def make(**kwargs) -> str:
        session = session_today(**kwargs)
        assert_ok(check_in(fd, session))
        return session

    return make


# --- treatment happens on the day, in the chair ------------------------------------------------


def test_a_booked_session_is_not_treated_409(prov, fd, session_today, lot):
    session = session_today()
    body = assert_problem(treat(prov, session, lot["id"]), 409, "invalid_state")
    assert "errors" not in body
    assert status_of(fd, session) == "booked"


def test_performed_at_on_another_day_than_the_sessions_is_400(prov, fd, in_chair, lot, clinic):
    session = in_chair()
    yesterday = timezone.now() - timedelta(days=1)
    body = assert_problem(
        treat(prov, session, lot["id"], performed_at=yesterday.isoformat()),
        400,
        "invalid",
        errors=ANY,
    )
    day = clinic.local_date(
        datetime.fromisoformat(assert_ok(fd.get(f"{SESSIONS}{session}/"))["starts_at"])
    )
    assert body["errors"] == {"performed_at": [f"Must fall on the session's day ({day})."]}
    assert status_of(fd, session) == "checked_in"


def test_two_sessions_of_one_series_treated_minutes_apart_the_second_is_422(
    prov, fd, new_series, in_chair, lot
):
    series = new_series()
    first, second = in_chair(series=series), in_chair(series=series)
    assert_ok(treat(prov, first, lot["id"]), 201)
    body = assert_problem(treat(prov, second, lot["id"]), 422, "interval_too_short")
    assert body["detail"].startswith("Treatments of a series must be at least 21 days apart")
    assert status_of(fd, second) == "checked_in"
    assert [detail["code"] for _o, _a, detail in refusals("treatment.record")] == [
        "interval_too_short"
    ]


def test_treatments_a_minimum_interval_apart_are_both_recorded(
    prov, new_series, in_chair, lot, clinic
):
    series = new_series()
    today = next(starts_today(clinic))
    earlier = in_chair(series=series, starts_at=today - timedelta(days=21))
    later = in_chair(series=series, starts_at=today)
    on_its_day = (today - timedelta(days=21) + timedelta(minutes=5)).isoformat()
    assert_ok(treat(prov, earlier, lot["id"], performed_at=on_its_day), 201)
    assert_ok(treat(prov, later, lot["id"]), 201)


@pytest.mark.django_db(transaction=True)
def test_two_treatments_of_one_series_racing_yield_one(api, provider, new_series, in_chair, lot):
    series = new_series()
    sessions = [in_chair(series=series) for _ in range(2)]
    clients = [api(provider) for _ in sessions]

    def record(pair):
        client, session = pair
        try:
            response = treat(client, session, lot["id"])
            return response.status_code, response.json().get("code")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = sorted(pool.map(record, zip(clients, sessions, strict=True)), key=str)
    assert results == [(201, None), (422, "interval_too_short")]


def test_check_in_opens_at_the_start_of_the_sessions_local_day(
    api, fd, front_desk, session_today, clinic
):
    tomorrow = clinic.today() + timedelta(days=1)
    starts_at = datetime.combine(tomorrow, time(10), clinic.zone)
    session = session_today(starts_at=starts_at)
    assert_problem(check_in(fd, session), 409, "invalid_state")
    assert status_of(fd, session) == "booked"
    midnight, _end = clinic.day_bounds(tomorrow)
    # Signed in then (an idle token expires).
    with time_machine.travel(midnight - timedelta(seconds=1), tick=False):
        assert_problem(check_in(api(front_desk), session), 409, "invalid_state")
    with time_machine.travel(midnight, tick=False):
        assert assert_ok(check_in(api(front_desk), session))["status"] == "checked_in"


# --- screening result --------------------------------------------------------------------------


def test_the_washout_is_listed_among_contraindications_while_it_runs(fd, clinic):
    patient = create_patient(fd)
    last_dose = clinic.today() - timedelta(days=30)
    body = screen(fd, patient["id"], isotretinoin_last_dose_on=last_dose.isoformat())
    washout_ends = assert_ok(
        fd.get(f"{PATIENTS}{patient['id']}/eligibility/", {"on": clinic.today().isoformat()})
    )["eligible_from"]
    assert (body["eligible"], body["contraindications"], body["eligible_from"]) == (
        False,
        ["isotretinoin_washout"],
        washout_ends,
    )
    # A dose long past: no washout runs on the screening day, nothing is listed.
    body = screen(fd, patient["id"], isotretinoin_last_dose_on="2020-01-01")
    assert (body["eligible"], body["contraindications"]) == (True, [])


# --- day-of attestation ------------------------------------------------------------------------


def test_the_setting_defaults_on_and_an_admin_switches_it(api, admin, front_desk):
    assert assert_ok(api(front_desk).get(CLINIC))["day_of_attestation_required"] is True
    body = assert_ok(
        api(admin).patch(CLINIC, {"day_of_attestation_required": False}, format="json")
    )
    assert body["day_of_attestation_required"] is False
    assert_problem(
        api(front_desk).patch(CLINIC, {"day_of_attestation_required": True}, format="json"),
        403,
        "permission_denied",
    )


def test_check_in_stores_the_attestation(fd, front_desk, session_today):
    session = session_today()
    body = assert_ok(check_in(fd, session))
    assert body["status"] == "checked_in"
    assert body["attestation"] == {
        "pregnant_or_nursing": False,
        "active_skin_infection": False,
        "open_wounds_in_area": False,
        "attested_at": body["checked_in_at"],
        "attested_by": str(front_desk.id),
    }
    assert assert_ok(fd.get(f"{SESSIONS}{session}/"))["attestation"] == body["attestation"]


@pytest.mark.parametrize(
    "body",
    [{}, {"pregnant_or_nursing": False}, {**ATTESTATION, "open_wounds_in_area": None}],
    ids=["none", "one", "null"],
)
def test_when_required_every_answer_is_needed_400(fd, session_today, body):
    session = session_today()
    problem = assert_problem(check_in(fd, session, body), 400, "invalid", errors=ANY)
    missing = [name for name in ATTESTATION if body.get(name) is None]
    assert problem["errors"] == {
        name: ["Required: the clinic asks this again on the day."] for name in missing
    }
    assert status_of(fd, session) == "booked"


@pytest.mark.parametrize(
    ("answers", "reasons"),
    [
        ({"pregnant_or_nursing": True}, ["pregnant_or_nursing"]),
        ({"active_skin_infection": True}, ["active_skin_infection"]),
        ({"open_wounds_in_area": True}, ["open_wounds"]),
        (
            {
                "pregnant_or_nursing": True,
                "active_skin_infection": True,
                "open_wounds_in_area": True,
            },
            ["pregnant_or_nursing", "active_skin_infection", "open_wounds"],
        ),
    ],
)
def test_any_yes_is_422_the_session_stays_booked_and_the_refusal_is_audited(
    fd, front_desk, session_today, answers, reasons
):
    session = session_today()
    body = assert_problem(
        check_in(fd, session, {**ATTESTATION, **answers}), 422, "patient_not_eligible"
    )
    assert body["reasons"] == reasons
    after = assert_ok(fd.get(f"{SESSIONS}{session}/"))
    assert (after["status"], after["attestation"], after["checked_in_at"]) == ("booked", None, None)
    assert refusals("session.check_in") == [
        (session, front_desk.username, {"code": "patient_not_eligible", "reasons": reasons})
    ]


def test_a_refusal_is_audited_under_an_idempotency_key_too(fd, front_desk, session_today):
    session = session_today()
    body = {**ATTESTATION, "pregnant_or_nursing": True}
    for _ in range(2):  # the replay answers the first response and records nothing new
        assert_problem(
            check_in(fd, session, body, HTTP_IDEMPOTENCY_KEY="attest-1"),
            422,
            "patient_not_eligible",
        )
    assert refusals("session.check_in") == [
        (
            session,
            front_desk.username,
            {"code": "patient_not_eligible", "reasons": ["pregnant_or_nursing"]},
        )
    ]


def test_with_the_setting_off_check_in_needs_no_answers_and_treatment_none(
    api, admin, fd, prov, session_today, lot
):
    assert_ok(api(admin).patch(CLINIC, {"day_of_attestation_required": False}, format="json"))
    session = session_today()
    body = assert_ok(check_in(fd, session, {}))
    assert (body["status"], body["attestation"]) == ("checked_in", None)
    assert_ok(treat(prov, session, lot["id"]), 201)
    # A "yes" still refuses, asked or not.
    other = session_today()
    assert_problem(check_in(fd, other, {"pregnant_or_nursing": True}), 422, "patient_not_eligible")


def test_treating_without_an_attestation_while_required_is_422(
    api, admin, fd, prov, session_today, lot
):
    clinic_settings = api(admin)
    assert_ok(clinic_settings.patch(CLINIC, {"day_of_attestation_required": False}, format="json"))
    session = session_today()
    assert_ok(check_in(fd, session, {}))
    assert_ok(clinic_settings.patch(CLINIC, {"day_of_attestation_required": True}, format="json"))
    body = assert_problem(treat(prov, session, lot["id"]), 422, "attestation_required")
    assert set(body) == {"type", "title", "status", "detail", "code"}
    assert status_of(fd, session) == "checked_in"


# --- warnings acknowledged ---------------------------------------------------------------------


def test_every_warning_in_force_must_be_acknowledged(prov, fd, new_series, in_chair, lot):
    series = new_series(keloid_history=True, diabetes=True, anticoagulants=True)
    session = in_chair(series=series)
    body = assert_problem(treat(prov, session, lot["id"]), 422, "warnings_not_acknowledged")
    assert body["warnings"] == ["anticoagulants", "keloid_history", "diabetes"]
    body = assert_problem(
        treat(prov, session, lot["id"], acknowledged_warnings=["diabetes", "anticoagulants"]),
        422,
        "warnings_not_acknowledged",
    )
    assert body["warnings"] == ["keloid_history"]
    assert [detail["warnings"] for _o, _a, detail in refusals("treatment.record")] == [
        ["anticoagulants", "keloid_history", "diabetes"],
        ["keloid_history"],
    ]
    record = assert_ok(
        treat(
            prov,
            session,
            lot["id"],
            acknowledged_warnings=["diabetes", "keloid_history", "anticoagulants", "diabetes"],
        ),
        201,
    )
    assert record["acknowledged_warnings"] == ["anticoagulants", "keloid_history", "diabetes"]
    assert assert_ok(prov.get(f"{SESSIONS}{session}/treatment/")) == record


def test_no_warnings_need_no_acknowledgement(prov, in_chair, lot):
    record = assert_ok(treat(prov, in_chair(), lot["id"]), 201)
    assert record["acknowledged_warnings"] == []


def test_an_unknown_warning_code_is_400(prov, in_chair, lot):
    body = assert_problem(
        treat(prov, in_chair(), lot["id"], acknowledged_warnings=["sunburn"]),
        400,
        "invalid",
        errors=ANY,
    )
    assert list(body["errors"]) == ["acknowledged_warnings.0"]


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ADMIN, Role.AUDITOR])
def test_only_a_provider_records_and_the_refusal_is_audited(
    api, staff_by_role, in_chair, lot, role
):
    session = in_chair()
    assert_problem(treat(api(staff_by_role[role]), session, lot["id"]), 403, "permission_denied")
    denied = AuditEvent.objects.filter(object_id=session, outcome="denied")
    assert list(denied.values_list("action", flat=True)) == ["treatment_record.create"]


# --- the schema --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    from rest_framework.test import APIClient

    with django_db_blocker.unblock():
        return APIClient().get("/api/schema/?format=json").json()


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _body(schema: dict, path: str, method: str, status: str | None = None) -> dict:
    operation = schema["paths"][path][method]
    if status is None:
        content = operation["requestBody"]["content"]["application/json"]
    else:
        content = operation["responses"][status]["content"]
        content = content.get("application/json") or content["application/problem+json"]
    return _resolve(schema, content["schema"])


def test_the_schema_documents_the_point_of_care(schema):
    check_in = "/api/v1/sessions/{id}/check-in/"
    assert set(_body(schema, check_in, "post")["properties"]) == set(ATTESTATION)
    session = _body(schema, check_in, "post", "200")
    attestation = session["properties"]["attestation"]
    assert attestation["nullable"] is True
    assert set(_resolve(schema, attestation["allOf"][0])["properties"]) == {
        *ATTESTATION,
        "attested_at",
        "attested_by",
    }
    treatment = "/api/v1/sessions/{id}/treatment/"
    warnings = _body(schema, treatment, "post")["properties"]["acknowledged_warnings"]
    assert (
        _resolve(schema, warnings["items"])
        == schema["components"]["schemas"]["ScreeningWarningEnum"]
    )
    assert "acknowledged_warnings" in _body(schema, treatment, "post", "201")["properties"]
    refusal = schema["paths"][treatment]["post"]["responses"]["422"]
    for code in ("attestation_required", "warnings_not_acknowledged", "consent_required"):
        assert f"`{code}`" in refusal["description"]
    problem = _body(schema, treatment, "post", "422")
    assert {"reasons", "warnings", "consent_forms"} <= set(problem["properties"])
    assert "day_of_attestation_required" in _body(schema, CLINIC, "get", "200")["properties"]
    assert set(_body(schema, "/api/v1/consent-forms/", "post", "201")["properties"]) == {
        "id",
        "title",
        "version",
        "body",
        "sha256",
        "indications",
        "required",
        "active",
        "created_at",
    }
    assert set(schema["paths"]["/api/v1/consent-forms/{id}/"]) == {"get"}
    consents = "/api/v1/patients/{id}/consents/"
    assert set(_body(schema, consents, "post", "201")["properties"]) == {
        "id",
        "patient",
        "consent_form",
        "title",
        "version",
        "sha256",
        "signature_name",
        "signed_at",
        "witnessed_by",
        "revoked_at",
    }
    assert "/api/v1/patients/{id}/consents/{consent_id}/revoke/" in schema["paths"]
