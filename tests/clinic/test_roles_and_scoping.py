"""Every role against every endpoint of the clinic app, and clinic isolation."""

import pytest

from clinic.models import AuditEvent, Role
from tests.factories import HandpieceFactory, RoomFactory, UserFactory

ADMIN, FRONT, PROVIDER, AUDITOR = Role.ADMIN, Role.FRONT_DESK, Role.PROVIDER, Role.AUDITOR
EVERYONE = {ADMIN, FRONT, PROVIDER, AUDITOR}

# (method, path, body, roles allowed, success status)
MATRIX = [
    ("get", "/api/v1/clinic/", None, EVERYONE, 200),
    ("patch", "/api/v1/clinic/", {"reminder_lead_hours": 48}, {ADMIN}, 200),
    ("get", "/api/v1/staff/", None, EVERYONE, 200),
    (
        "post",
        "/api/v1/staff/",
        {"username": "newbie", "password": "a-Long-pass-1", "full_name": "N", "role": FRONT},
        {ADMIN},
        201,
    ),
    ("get", "/api/v1/rooms/", None, EVERYONE, 200),
    ("post", "/api/v1/rooms/", {"name": "Treatment 3"}, {ADMIN}, 201),
    ("get", "/api/v1/handpieces/", None, EVERYONE, 200),
    ("post", "/api/v1/handpieces/", {"serial_number": "SP-9"}, {ADMIN}, 201),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body", "allowed", "ok"), MATRIX)
@pytest.mark.parametrize("role", sorted(EVERYONE))
def test_role_matrix(staff_by_role, api, role, method, path, body, allowed, ok):
    response = getattr(api(staff_by_role[role]), method)(path, body, format="json")
    if role in allowed:
        assert response.status_code == ok, response.content
    else:
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("factory", "path"),
    [(RoomFactory, "/api/v1/rooms/"), (HandpieceFactory, "/api/v1/handpieces/")],
)
def test_another_clinics_objects_are_404_and_absent_from_lists(
    admin, other_clinic, api, factory, path
):
    theirs = factory(clinic=other_clinic)
    ours = factory(clinic=admin.clinic)
    client = api(admin)

    response = client.get(f"{path}{theirs.id}/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert client.get(f"{path}{ours.id}/").status_code == 200
    assert [row["id"] for row in client.get(path).json()["results"]] == [str(ours.id)]


@pytest.mark.django_db
def test_another_clinics_staff_are_invisible(admin, other_clinic, api):
    stranger = UserFactory(clinic=other_clinic)
    client = api(admin)
    assert client.get(f"/api/v1/staff/{stranger.id}/").status_code == 404
    assert str(stranger.id) not in {
        row["id"] for row in client.get("/api/v1/staff/").json()["results"]
    }


@pytest.mark.django_db
def test_a_non_uuid_id_is_404(admin, api):
    assert api(admin).get("/api/v1/rooms/not-a-uuid/").json()["code"] == "not_found"


@pytest.mark.django_db
def test_staff_response_never_contains_a_password(admin, api):
    response = api(admin).post(
        "/api/v1/staff/",
        {"username": "pat", "password": "a-Long-pass-1", "full_name": "Pat", "role": PROVIDER},
    )
    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": body["id"],
        "username": "pat",
        "full_name": "Pat",
        "role": PROVIDER,
        "email": "",
    }
    listed = api(admin).get("/api/v1/staff/").json()["results"]
    assert all("password" not in row for row in listed)


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
def test_weak_staff_password_is_refused(admin, api):
    response = api(admin).post(
        "/api/v1/staff/", {"username": "x", "password": "123", "role": FRONT}
    )
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"password"}


@pytest.mark.django_db
def test_clinic_settings_are_validated(admin, api):
    client = api(admin)
    response = client.patch("/api/v1/clinic/", {"timezone": "Mars/Olympus"})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"timezone"}
    response = client.patch("/api/v1/clinic/", {"min_interval_days": 40})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"default_interval_days"}
    response = client.patch("/api/v1/clinic/", {"screening_valid_days": 0})
    assert response.status_code == 400


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


@pytest.mark.django_db
def test_pagination_shape_and_clamp(admin, api):
    RoomFactory.create_batch(5, clinic=admin.clinic)
    client = api(admin)
    page = client.get("/api/v1/rooms/?page_size=2").json()
    assert set(page) == {"results", "next", "previous"}
    assert len(page["results"]) == 2 and page["previous"] is None and "page=2" in page["next"]
    big = client.get("/api/v1/rooms/?page_size=100000").json()
    assert len(big["results"]) == 5 and big["next"] is None
