"""What schemathesis found the server took although the schema forbids it, each refused now
(400 `invalid` naming the field or parameter), and what it must still take."""

from unittest.mock import ANY

import pytest

from clinic.models import Role, Room
from tests.factories import PatientFactory, RoomFactory
from tests.helpers import assert_problem


@pytest.mark.django_db
@pytest.mark.parametrize("parameter", ["page", "page_size"])
@pytest.mark.parametrize("value", ["0", "-1", "1.5", "x", "", "null", "last", "\u0663"])
def test_page_and_page_size_are_whole_numbers_from_1(admin, api, parameter, value):
    response = api(admin).get("/api/v1/rooms/", {parameter: value})
    body = assert_problem(response, 400, "invalid", errors=ANY)
    assert list(body["errors"]) == [parameter]


@pytest.mark.django_db
def test_a_page_size_past_200_is_clamped_to_200(admin, api):
    RoomFactory.create_batch(3, clinic=admin.clinic)
    response = api(admin).get("/api/v1/rooms/", {"page_size": "1000"})
    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == 3


@pytest.mark.django_db
def test_the_audit_trail_page_size_is_strict_too(auditor, api):
    response = api(auditor).get("/api/v1/audit-events/", {"page_size": "0"})
    assert list(assert_problem(response, 400, "invalid", errors=ANY)["errors"]) == ["page_size"]


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["clé", " leading", "trailing ", "tab\there", "x" * 256])
def test_an_idempotency_key_is_visible_ascii(admin, api, key):
    response = api(admin).post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY=key)
    assert_problem(response, 400, "invalid")
    assert Room.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["k", "a b", "!~", "x" * 255])
def test_an_idempotency_key_of_visible_ascii_is_taken(admin, api, key):
    response = api(admin).post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 201, response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/rooms/", {"name": 0}, "name"),
        ("/api/v1/rooms/", {"name": 1.5}, "name"),
        ("/api/v1/handpieces/", {"serial_number": True}, "serial_number"),
        ("/api/v1/staff/", {"username": "u", "password": "p" * 12, "role": 1}, "role"),
    ],
)
def test_a_body_field_takes_its_json_type_only(admin, api, path, body, field):
    response = api(admin).post(path, body, format="json")
    body = assert_problem(response, 400, "invalid", errors=ANY)
    assert field in body["errors"], body


PATIENT = {
    "first_name": "Ana",
    "last_name": "Lima",
    "date_of_birth": "1990-01-01",
    "email": "ana@example.com",
    "phone": "",
    "fitzpatrick_type": 3,
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("fitzpatrick_type", "3"),
        ("fitzpatrick_type", 3.0),
        ("sms_opt_in", 1),
        ("sms_opt_in", "true"),
    ],
)
def test_a_patient_field_of_another_json_type_is_400(front_desk, api, field, value):
    response = api(front_desk).post("/api/v1/patients/", {**PATIENT, field: value}, format="json")
    body = assert_problem(response, 400, "invalid", errors=ANY)
    assert list(body["errors"]) == [field]


@pytest.mark.django_db
def test_a_patient_with_json_types_as_the_schema_says_is_created(front_desk, api):
    response = api(front_desk).post(
        "/api/v1/patients/", {**PATIENT, "email_opt_in": True}, format="json"
    )
    assert response.status_code == 201, response.content


@pytest.mark.django_db
@pytest.mark.parametrize("value", [0, 1, "false", None])
def test_a_clinic_setting_boolean_is_true_or_false(admin, api, value):
    response = api(admin).patch(
        "/api/v1/clinic/", {"day_of_attestation_required": value}, format="json"
    )
    body = assert_problem(response, 400, "invalid", errors=ANY)
    assert list(body["errors"]) == ["day_of_attestation_required"]


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["2", "yes", "True", "1"])
def test_a_boolean_filter_takes_true_or_false_only(admin, api, value):
    response = api(admin).get("/api/v1/patients/", {"archived": value})
    assert list(assert_problem(response, 400, "invalid", errors=ANY)["errors"]) == ["archived"]


@pytest.mark.django_db
def test_a_boolean_filter_sent_empty_filters_nothing(admin, api):
    patient = PatientFactory(clinic=admin.clinic)
    for query in ({"archived": ""}, {"archived": "false"}):
        response = api(admin).get("/api/v1/patients/", query)
        assert response.status_code == 200, response.content
        assert [row["id"] for row in response.json()["results"]] == [str(patient.id)]
    assert api(admin).get("/api/v1/patients/", {"archived": "true"}).json()["results"] == []


@pytest.mark.django_db
@pytest.mark.parametrize("starts", ["\u0660\u0669:\u0660\u0660", "09:00 ", "9:00"])
def test_working_hours_are_hh_mm_in_ascii_digits(admin, make_user, api, starts):
    provider = make_user(Role.PROVIDER, admin.clinic)
    response = api(admin).put(
        f"/api/v1/staff/{provider.id}/working-hours/",
        {"intervals": [{"weekday": 0, "starts": starts, "ends": "17:00"}]},
        format="json",
    )
    body = assert_problem(response, 400, "invalid", errors=ANY)
    assert list(body["errors"]) == ["intervals.0.starts"]
