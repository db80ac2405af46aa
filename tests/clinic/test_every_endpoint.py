"""Every endpoint of the API, found through the URL resolver (so a new one cannot be forgotten),
answers hostile requests with a 4xx problem+json or its normal answer: never a 500."""

import hashlib
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from clinic.models import Role
from tests.factories import (
    HandpieceFactory,
    PatientFactory,
    RoomFactory,
    ScreeningFactory,
    SeriesFactory,
    SessionFactory,
    TipLotFactory,
)
from tests.factories.scheduling import checked_in_fields, starts_today
from tests.helpers import url_patterns
from treatments.models import AftercareTemplate, ConsentForm, RecallNotice

PROBLEM = "application/problem+json"
ROLES = [Role.ADMIN, Role.FRONT_DESK, Role.PROVIDER, Role.AUDITOR, None]
_PARAM = re.compile(r"\(\?P<(\w+)>[^)]*\)|<(?:\w+:)?(\w+)>")


API_ROUTES = sorted(
    {route for route, _view in url_patterns() if route.startswith(("api/v1/", "healthz/"))}
)


@pytest.fixture
def world(clinic, admin, front_desk, provider, api):
    """One object of every kind, and the id each route's parameters take."""
    patient = PatientFactory(clinic=clinic)
    ScreeningFactory(
        patient=patient,
        screened_by=front_desk,
        screened_on=timezone.localdate(timezone=clinic.zone),
    )
    series = SeriesFactory(patient=patient, created_by=front_desk)
    starts_at = next(starts_today(clinic))
    session = SessionFactory(
        series=series,
        provider=provider,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=1),
        **checked_in_fields(front_desk),
        created_by=front_desk,
    )
    lot = TipLotFactory(clinic=clinic, received_by=provider, quantity_received=10)
    recorded = api(provider).post(
        f"/api/v1/sessions/{session.id}/treatment/",
        {"tip_lot": str(lot.id), "depths": [{"area": "cheeks", "depth_mm": "1.0"}]},
    )
    assert recorded.status_code == 201, recorded.content
    other_lot = TipLotFactory(clinic=clinic, received_by=provider, quantity_received=10)
    notice = RecallNotice.objects.create(
        clinic=clinic, tip_lot=other_lot, source="openfda", source_id="Z-1", lot_number="L"
    )
    room = RoomFactory(clinic=clinic)
    handpiece = HandpieceFactory(clinic=clinic)
    time_off = api(admin).post(
        "/api/v1/time-off/",
        {
            "room": str(room.id),
            "starts_at": (starts_at + timedelta(days=30)).isoformat(),
            "ends_at": (starts_at + timedelta(days=31)).isoformat(),
        },
    )
    assert time_off.status_code == 201, time_off.content
    template = AftercareTemplate.objects.create(clinic=clinic, name="Standard", steps=[])
    form = ConsentForm.objects.create(
        clinic=clinic,
        title="Microneedling",
        body="I consent.",
        sha256=hashlib.sha256(b"I consent.").hexdigest(),
        created_by=admin,
    )
    by_prefix = {
        "staff": provider.id,
        "rooms": room.id,
        "handpieces": handpiece.id,
        "patients": patient.id,
        "fhir": patient.id,
        "series": series.id,
        "sessions": session.id,
        "time-off": time_off.json()["id"],
        "tip-lots": lot.id,
        "recall-notices": notice.id,
        "aftercare-templates": template.id,
        "consent-forms": form.id,
    }

    def url(route: str) -> str:
        words = route.removeprefix("api/v1/").lstrip("^").split("/")
        value = str(by_prefix.get(words[0], "0" * 8))
        path = _PARAM.sub(lambda _m: value, route.replace("^", "").replace("$", ""))
        return "/" + path.replace("\\", "")

    return url


def client_for(role, clinic, make_user) -> APIClient:
    client = APIClient()
    client.raise_request_exception = False
    if role is not None:
        from knox.models import AuthToken

        _instance, token = AuthToken.objects.create(user=make_user(role, clinic))
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def assert_not_a_server_error(response, what: str) -> None:
    assert response.status_code < 500, (what, response.status_code, response.content[:300])
    if response.status_code >= 400:
        assert response["Content-Type"] == PROBLEM, (what, response["Content-Type"])


def test_the_resolver_finds_the_api():
    assert len(API_ROUTES) > 40
    assert "api/v1/sessions/<uuid:pk>/treatment/amendments/" in API_ROUTES


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_options_on_every_endpoint_for_every_role(world, clinic, make_user, role):
    client = client_for(role, clinic, make_user)
    for route in API_ROUTES:
        url = world(route)
        response = client.options(url)
        assert_not_a_server_error(response, f"OPTIONS {url} as {role}")


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.ADMIN, Role.PROVIDER, None])
@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_a_body_nested_1000_deep_on_every_endpoint(world, clinic, make_user, role, method):
    client = client_for(role, clinic, make_user)
    for route in API_ROUTES:
        for body in (b"[" * 1000 + b"]" * 1000, b'{"a":' * 1000 + b"1" + b"}" * 1000):
            url = world(route)
            response = getattr(client, method)(url, body, content_type="application/json")
            assert_not_a_server_error(response, f"{method} {url} as {role}")


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.ADMIN, Role.AUDITOR, None])
def test_every_api_response_says_no_store(world, clinic, make_user, role):
    """Patient data must not be kept by a browser, a proxy or a shared device: every answer,
    errors included (the export and FHIR among them)."""
    client = client_for(role, clinic, make_user)
    missing = []
    for route in [r for r in API_ROUTES if r.startswith("api/")] + ["api/schema/", "api/nope/"]:
        url = world(route)
        response = client.get(url)
        if response.get("Cache-Control") != "no-store":
            missing.append((url, response.status_code, response.get("Cache-Control")))
    assert missing == []
