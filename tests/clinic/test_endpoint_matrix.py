"""Every endpoint and method, derived from the URL resolver, against every role and a user of
another clinic: a new endpoint cannot be forgotten, because the first test fails until it has
its row in ROUTES (the roles the contract grants it, and which object its `{id}` is).

One world (tests/world.py: a clinic with one of everything, and a second clinic with one user
per role), built once for the module, serves every request; each request runs in a savepoint
that is rolled back, so no call changes what the next one sees.
"""

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from clinic.models import Role
from tests.helpers import url_patterns
from tests.world import World, build_world

A, F, P, U = Role.ADMIN, Role.FRONT_DESK, Role.PROVIDER, Role.AUDITOR
EVERYONE = frozenset({A, F, P, U})
CLINICAL = frozenset({A, F, P})
PROVIDERS = frozenset({A, P})
AUDIT = frozenset({A, U})
NOBODY: frozenset[str] = frozenset()

# path (as the resolver has it, ids as {id}) -> (what {id} is, {method: roles granted}).
# Roles from the contract ("Roles" and each endpoint's "write:" note); "public" routes take no
# bearer token at all and are checked by their own tests.
ROUTES: dict[str, tuple[str | None, dict[str, frozenset[str]]]] = {
    "/api/v1/auth/token/": (None, {"post": NOBODY}),
    "/api/v1/auth/logout/": (None, {"post": EVERYONE}),
    "/api/v1/clinic/": (None, {"get": EVERYONE, "patch": frozenset({A})}),
    "/api/v1/staff/": (None, {"get": EVERYONE, "post": frozenset({A})}),
    "/api/v1/staff/{id}/": ("provider", {"get": EVERYONE}),
    "/api/v1/staff/{id}/working-hours/": ("provider", {"get": EVERYONE, "put": frozenset({A})}),
    # Admin, or the staff member themself (the {id} here is the provider's own).
    "/api/v1/staff/{id}/calendar-feed/": ("provider", {"post": PROVIDERS}),
    "/api/v1/calendar-feeds/{secret}/": ("feed_secret", {"get": NOBODY}),
    "/api/v1/rooms/": (None, {"get": EVERYONE, "post": frozenset({A})}),
    "/api/v1/rooms/{id}/": ("room", {"get": EVERYONE}),
    "/api/v1/handpieces/": (None, {"get": EVERYONE, "post": frozenset({A})}),
    "/api/v1/handpieces/{id}/": ("handpiece", {"get": EVERYONE}),
    "/api/v1/audit-events/": (None, {"get": AUDIT}),
    "/api/v1/patients/": (None, {"get": EVERYONE, "post": CLINICAL}),
    "/api/v1/patients/{id}/": ("patient", {"get": EVERYONE, "patch": CLINICAL}),
    "/api/v1/patients/{id}/archive/": ("patient", {"post": CLINICAL}),
    "/api/v1/patients/{id}/screenings/": ("patient", {"get": EVERYONE, "post": CLINICAL}),
    "/api/v1/patients/{id}/eligibility/": ("patient", {"get": EVERYONE}),
    "/api/v1/series/": (None, {"get": EVERYONE, "post": CLINICAL}),
    "/api/v1/series/{id}/": ("series", {"get": EVERYONE}),
    "/api/v1/series/{id}/cancel/": ("series", {"post": CLINICAL}),
    "/api/v1/series/{id}/plan/": ("series", {"post": CLINICAL}),
    "/api/v1/series/{id}/book/": ("series", {"post": CLINICAL}),
    "/api/v1/sessions/": (None, {"get": EVERYONE, "post": CLINICAL}),
    "/api/v1/sessions/{id}/": ("session", {"get": EVERYONE}),
    "/api/v1/sessions/{id}/cancel/": ("session", {"post": CLINICAL}),
    "/api/v1/sessions/{id}/check-in/": ("session", {"post": CLINICAL}),
    "/api/v1/sessions/{id}/no-show/": ("session", {"post": CLINICAL}),
    "/api/v1/sessions/{id}/reschedule/": ("session", {"post": CLINICAL}),
    # Charting is the treating provider's alone (contract, "Clarifications of v1").
    "/api/v1/sessions/{id}/treatment/": (
        "treated_session",
        {"get": EVERYONE, "post": frozenset({P})},
    ),
    "/api/v1/sessions/{id}/treatment/amendments/": (
        "treated_session",
        {"get": EVERYONE, "post": frozenset({P})},
    ),
    "/api/v1/sessions/{id}/aftercare/": ("treated_session", {"get": EVERYONE}),
    "/api/v1/time-off/": (None, {"get": EVERYONE, "post": frozenset({A})}),
    "/api/v1/time-off/{id}/": ("time_off", {"get": EVERYONE, "delete": frozenset({A})}),
    "/api/v1/availability/": (None, {"get": EVERYONE}),
    "/api/v1/notifications/": (None, {"get": EVERYONE}),
    "/api/v1/notifications/{id}/": ("notification", {"get": EVERYONE}),
    "/api/v1/tip-lots/": (None, {"get": EVERYONE, "post": PROVIDERS}),
    "/api/v1/tip-lots/scan/": (None, {"post": PROVIDERS}),
    "/api/v1/tip-lots/{id}/": ("tip_lot", {"get": EVERYONE}),
    "/api/v1/tip-lots/{id}/recall/": ("tip_lot", {"post": frozenset({A})}),
    "/api/v1/tip-lots/{id}/usage/": ("tip_lot", {"get": EVERYONE}),
    "/api/v1/recall-notices/": (None, {"get": frozenset({A, P, U})}),
    "/api/v1/recall-notices/{id}/": ("recall_notice", {"get": frozenset({A, P, U})}),
    "/api/v1/recall-notices/{id}/confirm/": ("recall_notice", {"post": frozenset({A})}),
    "/api/v1/recall-notices/{id}/dismiss/": ("recall_notice", {"post": frozenset({A})}),
    "/api/v1/aftercare-templates/": (None, {"get": EVERYONE, "post": frozenset({A})}),
    "/api/v1/aftercare-templates/{id}/": (
        "aftercare_template",
        {"get": EVERYONE, "patch": frozenset({A})},
    ),
    # Webhooks: auditors read (never the secret), only admins write (contract, v1.1).
    "/api/v1/webhooks/": (None, {"get": AUDIT, "post": frozenset({A})}),
    "/api/v1/webhooks/{id}/": ("webhook", {"get": AUDIT, "delete": frozenset({A})}),
    "/api/v1/webhooks/{id}/deliveries/": ("webhook", {"get": AUDIT}),
    "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver/": (
        "webhook",
        {"post": frozenset({A})},
    ),
    # SMS replies: the provider posts them (signed, no token); the front desk reads them.
    "/api/v1/inbound/sms/": (None, {"post": NOBODY}),
    "/api/v1/inbound-messages/": (None, {"get": frozenset({A, F})}),
    "/api/v1/inbound-messages/{id}/": ("inbound_message", {"get": frozenset({A, F})}),
    "/api/v1/consent-forms/": (None, {"get": EVERYONE, "post": frozenset({A})}),
    "/api/v1/consent-forms/{id}/": ("consent_form", {"get": EVERYONE}),
    "/api/v1/consent-forms/{id}/revise/": ("consent_form", {"post": frozenset({A})}),
    "/api/v1/patients/{id}/consents/": ("patient", {"get": EVERYONE, "post": CLINICAL}),
    "/api/v1/patients/{id}/consents/{consent_id}/": ("patient_consent", {"get": EVERYONE}),
    "/api/v1/patients/{id}/consents/{consent_id}/revoke/": (
        "patient_consent",
        {"post": CLINICAL},
    ),
    "/api/v1/exports/tip-usage.csv": (None, {"get": AUDIT}),
    "/api/v1/exports/tip-usage.csv/": (None, {"get": AUDIT}),
    "/api/v1/fhir/Patient/{id}/$everything": ("patient", {"get": EVERYONE}),
    "/api/v1/fhir/Patient/{id}/$everything/": ("patient", {"get": EVERYONE}),
}
# Reached without a bearer token by design (the token endpoint, a secret feed URL).
PUBLIC = {"/api/v1/auth/token/", "/api/v1/calendar-feeds/{secret}/", "/api/v1/inbound/sms/"}
# What an allowed role may get when the empty body or the world's state does not suit the call.
PASSED_THE_GATE = {200, 201, 202, 204, 400, 409, 422}

_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)|<(?:\w+:)?(\w+)>")


def _route(pattern: str) -> str:
    def name(match: re.Match[str]) -> str:
        group = match.group(1) or match.group(2)
        return "{id}" if group == "pk" else "{" + group + "}"

    return "/" + _GROUP.sub(name, pattern.replace("^", "").replace("$", "").replace("\\", ""))


def resolved_api_endpoints() -> set[tuple[str, str]]:
    """(path, method) of every API endpoint Django routes, as the URL resolver has them."""
    endpoints = set()
    for raw, callback in url_patterns():
        if not raw.startswith("api/v1/"):
            continue
        # "$everything" is a literal in the FHIR path, not a regex anchor.
        path = _route(raw.replace("$everything", "\0")).replace("\0", "$everything")
        actions = getattr(callback, "actions", None)
        view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        if actions:
            methods = set(actions) - {"options", "head"}
        else:
            methods = {
                m
                for m in view.http_method_names
                if m not in {"options", "head"} and hasattr(view, m)
            }
        endpoints |= {(path, method) for method in methods}
    return endpoints


def test_every_endpoint_is_in_the_matrix():
    declared = {(path, method) for path, (_kind, methods) in ROUTES.items() for method in methods}
    resolved = resolved_api_endpoints()
    missing = sorted(resolved - declared)
    assert missing == [], (
        "endpoints with no row in tests/clinic/test_endpoint_matrix.py ROUTES (say which roles "
        f"the contract grants them): {missing}"
    )
    assert sorted(declared - resolved) == []


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> Iterator[World]:
    """The one world (tests/world.py), built once for the module in a transaction rolled back
    after its last test; each test (and each request, see `_call`) runs in a savepoint."""
    with django_db_blocker.unblock(), transaction.atomic():
        world = build_world()
        world.ids["patient_consent"] = (world.ids["patient"], world.ids["consent"])
        world.ids["webhook_delivery"] = world.ids["delivery"]
        yield world
        transaction.set_rollback(True)


def _client(user) -> APIClient:
    from knox.models import AuthToken

    client = APIClient()
    if user is not None:
        _instance, token = AuthToken.objects.create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _call(client: APIClient, method: str, path: str) -> tuple[int, str, bytes]:
    """One request inside a savepoint that is then rolled back: the world stays as it was."""
    with transaction.atomic():
        response = getattr(client, method)(path, {} if method != "get" else None, format="json")
        body = b"" if getattr(response, "streaming", False) else response.content
        transaction.set_rollback(True)
    code = ""
    if response.get("Content-Type", "").startswith("application/problem+json"):
        code = response.json().get("code", "")
    return response.status_code, code, body


def _concrete(path: str, kind: str | None, ids: dict[str, Any]) -> str:
    if kind is None:
        return path
    path = path.replace("{delivery_id}", str(ids["webhook_delivery"]))
    value = ids[kind]
    if isinstance(value, tuple):  # a sub-resource: the parent's {id}, then its own
        parent, child = value
        return path.replace("{id}", str(parent)).replace("{consent_id}", str(child))
    return path.replace("{id}", str(value)).replace("{secret}", str(value))


@pytest.mark.django_db
def test_every_role_gets_exactly_what_the_matrix_grants(world):
    wrong = []
    clients = {role: world.client(role) for role in world.users}
    for path, (kind, methods) in ROUTES.items():
        if path in PUBLIC:
            continue
        url = _concrete(path, kind, world.ids)
        for method, granted in methods.items():
            if path == "/api/v1/auth/logout/":
                continue  # ends the client's token: tests/clinic/test_auth.py covers it
            for role, client in clients.items():
                status, code, _body = _call(client, method, url)
                if role in granted:
                    ok = status in PASSED_THE_GATE
                else:
                    ok = (status, code) == (403, "permission_denied")
                if not ok:
                    wrong.append((method.upper(), path, role, status, code))
    assert wrong == [], "\n".join(map(str, wrong))


@pytest.mark.django_db
def test_a_user_of_another_clinic_reaches_nothing_of_this_one(world):
    """Another clinic's staff get 404 for this clinic's ids (403 where their role has no
    access at all), and no list they can read carries any id of this clinic."""
    ours = [str(value) for value in world.ids.values()]
    wrong = []
    for role, user in world.strangers.items():
        client = _client(user)
        for path, (kind, methods) in ROUTES.items():
            if path in PUBLIC or path == "/api/v1/auth/logout/":
                continue
            url = _concrete(path, kind, world.ids)
            for method, granted in methods.items():
                if kind is None and method != "get":
                    continue  # creates in their own clinic: the apps' own tests cover bodies
                status, code, body = _call(client, method, url)
                if kind is not None:
                    # 404 as if the id did not exist; a role with no access may learn that first.
                    expected = {(404, "not_found")}
                    if role not in granted:
                        expected.add((403, "permission_denied"))
                    if (status, code) not in expected:
                        wrong.append((method.upper(), path, role, status, code))
                elif any(value.encode() in body for value in ours):
                    wrong.append((method.upper(), path, role, status, "leaks an id of ours"))
    assert wrong == [], "\n".join(map(str, wrong))


@pytest.mark.django_db
def test_anonymous_requests_are_401_everywhere_but_the_public_endpoints(world):
    wrong = []
    anonymous = _client(None)
    for path, (kind, methods) in ROUTES.items():
        if path in PUBLIC:
            continue
        for method in methods:
            status, code, _body = _call(anonymous, method, _concrete(path, kind, world.ids))
            if (status, code) != (401, "not_authenticated"):
                wrong.append((method.upper(), path, status, code))
    assert wrong == [], "\n".join(map(str, wrong))
