"""Every endpoint of the API, found through the URL resolver (so a new one cannot be forgotten),
answers hostile requests with a 4xx problem+json or its normal answer: never a 500."""

import re
from collections.abc import Iterator

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from clinic.models import Role
from tests.helpers import url_patterns
from tests.world import World, build_world

PROBLEM = "application/problem+json"
ROLES = [Role.ADMIN, Role.FRONT_DESK, Role.PROVIDER, Role.AUDITOR, None]
_PARAM = re.compile(r"\(\?P<(\w+)>[^)]*\)|<(?:\w+:)?(\w+)>")


API_ROUTES = sorted(
    {route for route, _view in url_patterns() if route.startswith(("api/v1/", "healthz/"))}
)


# The object a path parameter names, by the path's first word; any other parameter gets a value
# that names nothing.
_BY_PREFIX = {
    "staff": "provider",
    "rooms": "room",
    "handpieces": "handpiece",
    "patients": "patient",
    "fhir": "patient",
    "series": "series",
    "sessions": "treated_session",
    "time-off": "time_off",
    "tip-lots": "tip_lot",
    "recall-notices": "recall_notice",
    "aftercare-templates": "aftercare_template",
    "consent-forms": "consent_form",
}


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> Iterator[World]:
    """The one world (tests/world.py), built once for the module in a transaction rolled back
    after its last test; each test runs in a savepoint of it."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield build_world()
        transaction.set_rollback(True)


def url(world: World, route: str) -> str:
    """The route with the world's object in each parameter."""
    words = route.removeprefix("api/v1/").lstrip("^").split("/")
    kind = _BY_PREFIX.get(words[0])
    value = world.ids[kind] if kind else "0" * 8
    path = _PARAM.sub(lambda _m: value, route.replace("^", "").replace("$", ""))
    return "/" + path.replace("\\", "")


def client_for(world: World, role) -> APIClient:
    client = world.client(role)
    client.raise_request_exception = False
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
def test_options_on_every_endpoint_for_every_role(world, role):
    client = client_for(world, role)
    for route in API_ROUTES:
        path = url(world, route)
        response = client.options(path)
        assert_not_a_server_error(response, f"OPTIONS {path} as {role}")


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.ADMIN, Role.PROVIDER, None])
@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_a_body_nested_1000_deep_on_every_endpoint(world, role, method):
    client = client_for(world, role)
    for route in API_ROUTES:
        for body in (b"[" * 1000 + b"]" * 1000, b'{"a":' * 1000 + b"1" + b"}" * 1000):
            path = url(world, route)
            response = getattr(client, method)(path, body, content_type="application/json")
            assert_not_a_server_error(response, f"{method} {path} as {role}")


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.ADMIN, Role.AUDITOR, None])
def test_every_api_response_says_no_store(world, role):
    """Patient data must not be kept by a browser, a proxy or a shared device: every answer,
    errors included (the export and FHIR among them)."""
    client = client_for(world, role)
    missing = []
    for route in [r for r in API_ROUTES if r.startswith("api/")] + ["api/schema/", "api/nope/"]:
        path = url(world, route)
        response = client.get(path)
        if response.get("Cache-Control") != "no-store":
            missing.append((path, response.status_code, response.get("Cache-Control")))
    assert missing == []
