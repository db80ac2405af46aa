"""Every error is RFC 9457 problem details with a `code`."""

from unittest.mock import ANY

import pytest
from django.db import IntegrityError, transaction
from django.test import override_settings
from rest_framework.test import APIClient

from clinic.api.views import RoomViewSet
from tests.helpers import assert_problem


@pytest.mark.django_db
@override_settings(DEBUG=True)
def test_unknown_api_url_is_problem_404_even_in_debug():
    assert_problem(APIClient().get("/api/v1/no-such-thing/"), 404, "not_found")


@pytest.mark.django_db
def test_method_not_allowed_is_problem_405(admin, api):
    response = api(admin).delete("/api/v1/clinic/")
    assert_problem(response, 405, "method_not_allowed")
    assert response["Allow"]


@pytest.mark.django_db
def test_field_validation_lists_errors_per_field(admin, api):
    response = api(admin).post("/api/v1/staff/", {"username": "", "role": "wizard"})
    body = assert_problem(response, 400, "invalid", errors=ANY)
    assert set(body["errors"]) == {"username", "password", "role"}
    assert all(isinstance(m, list) and m for m in body["errors"].values())


@pytest.mark.django_db
def test_unexpected_errors_are_500_problem_without_a_trace(admin, api, monkeypatch):

    def explode(**kwargs):
        raise RuntimeError("patient Jane Doe, DOB 1980-01-01")

    monkeypatch.setattr(RoomViewSet, "create_service", staticmethod(explode))
    client = api(admin)
    client.raise_request_exception = False
    response = client.post("/api/v1/rooms/", {"name": "X"})
    body = assert_problem(response, 500, "server_error")
    assert "Jane" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert body["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db
def test_an_unmapped_constraint_violation_is_a_409_problem(admin, api, monkeypatch):

    def violate(**kwargs):
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(RoomViewSet, "create_service", staticmethod(violate))
    assert_problem(api(admin).post("/api/v1/rooms/", {"name": "X"}), 409, "conflict")


@pytest.mark.django_db
def test_a_named_constraint_violation_maps_to_the_services_error(admin):
    """When a concurrent insert wins the race past the service's pre-check, PostgreSQL's named
    constraint decides, and the error it raises maps to the very same domain error."""
    from clinic.errors import InvalidInput, error_for_integrity_error
    from clinic.models import Room

    Room.objects.create(clinic=admin.clinic, name="Lotus")
    with pytest.raises(IntegrityError) as raised, transaction.atomic():
        Room.objects.create(clinic=admin.clinic, name="LOTUS")
    mapped = error_for_integrity_error(raised.value)
    assert isinstance(mapped, InvalidInput)
    assert mapped.extra == {"errors": {"name": ["A room with this name already exists."]}}


@pytest.mark.django_db
def test_every_response_carries_a_request_id(admin, api):
    response = api(admin).get("/api/v1/clinic/", HTTP_X_REQUEST_ID="abc123")
    assert response["X-Request-ID"] == "abc123"
    assert len(APIClient().get("/healthz/")["X-Request-ID"]) == 32


@pytest.mark.django_db
@pytest.mark.parametrize("body", [b"[" * 1000 + b"]" * 1000, b'{"a":' * 33 + b"1" + b"}" * 33])
def test_a_body_nested_too_deeply_is_400_even_for_the_anonymous_login(body):
    client = APIClient()
    client.raise_request_exception = False
    response = client.post("/api/v1/auth/token/", body, content_type="application/json")
    problem = assert_problem(response, 400, "invalid")
    assert problem["detail"] == "JSON parse error - nested more than 32 levels deep."


@pytest.mark.django_db
def test_a_body_nested_32_deep_is_parsed(admin, api):
    body = '{"name": "R", "x": ' + "[" * 31 + "]" * 31 + "}"
    response = api(admin).post("/api/v1/rooms/", body, content_type="application/json")
    assert response.status_code == 201, response.content


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["0", "-1", "2", "x", "1e3", str(10**30)])
def test_a_page_that_does_not_exist_is_400_naming_it(admin, api, page):
    response = api(admin).get("/api/v1/rooms/", {"page": page})
    body = assert_problem(response, 400, "invalid", errors=ANY)
    assert list(body["errors"]) == ["page"]


@pytest.mark.django_db
def test_options_describes_the_view_without_building_its_body(provider, api):
    from tests.factories import SessionFactory

    session = SessionFactory(series__patient__clinic=provider.clinic)
    response = api(provider).options(f"/api/v1/sessions/{session.id}/treatment/amendments/")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "name": response.json()["name"],
        "description": response.json()["description"],
        "renders": ["application/json"],
        "parses": ["application/json"],
        "schema": "/api/schema/",
    }
    assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST", "OPTIONS"}
