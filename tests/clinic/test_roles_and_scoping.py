"""The clinic app's staff and settings beyond the contract's cases (which roles read and write
what, another clinic's objects, pagination: tests/contract/test_foundation_contract.py)."""

import pytest

from clinic.models import AuditEvent, Role
from tests.factories import UserFactory

FRONT = Role.FRONT_DESK


@pytest.mark.django_db
def test_a_non_uuid_id_is_404(admin, api):
    assert api(admin).get("/api/v1/rooms/not-a-uuid/").json()["code"] == "not_found"


@pytest.mark.django_db
def test_staff_have_an_optional_email(admin, api):
    client = api(admin)
    body = {"username": "ann", "password": "a-Long-pass-1", "role": "admin"}
    response = client.post("/api/v1/staff/", {**body, "email": "ann@clinic.example"})
    assert (response.status_code, response.json()["email"]) == (201, "ann@clinic.example")
    listed = {row["username"]: row for row in client.get("/api/v1/staff/").json()["results"]}
    assert listed["ann"]["email"] == "ann@clinic.example"
    response = client.post("/api/v1/staff/", {**body, "username": "bob", "email": "not-an-address"})
    assert (response.status_code, list(response.json()["errors"])) == (400, ["email"])


@pytest.mark.django_db
def test_staff_username_is_unique_case_insensitively_across_clinics(admin, other_clinic, api):
    UserFactory(clinic=other_clinic, username="Sam")
    response = api(admin).post(
        "/api/v1/staff/", {"username": "sam", "password": "a-Long-pass-1", "role": FRONT}
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"username": ["This username is taken."]}


@pytest.mark.django_db
def test_clinic_settings_are_validated(admin, api):
    # A minimum interval above the default interval names the default (a bad timezone or
    # validity: test_foundation_contract.py, test_a_bad_clinic_setting_is_400_invalid_...).
    response = api(admin).patch("/api/v1/clinic/", {"min_interval_days": 40})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"default_interval_days"}


@pytest.mark.django_db
def test_clinic_settings_update_returns_the_whole_clinic_and_is_audited(admin, api):
    response = api(admin).patch(
        "/api/v1/clinic/", {"timezone": "Europe/Paris", "screening_valid_days": 120}
    )
    assert response.status_code == 200
    clinic = admin.clinic
    assert response.json() == {
        "id": str(clinic.id),
        "name": clinic.name,
        "timezone": "Europe/Paris",
        "screening_valid_days": 120,
        "min_interval_days": 21,
        "default_interval_days": 30,
        "isotretinoin_washout_months": 6,
        "reminder_lead_hours": 24,
        "day_of_attestation_required": True,
    }
    event = AuditEvent.objects.get(action="clinic.update")
    assert event.detail == {"fields": ["screening_valid_days", "timezone"]}
    assert event.actor_id == admin.id
