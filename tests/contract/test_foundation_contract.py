"""Black-box checks of the v1 contract's foundation (../shared/api-contract.md), over HTTP.

Auth, clinic settings, staff, rooms, handpieces, roles, clinic isolation, pagination, problem
details, Idempotency-Key, health, schema and docs. Every test talks to the API the way a
client does, against the real PostgreSQL and Redis; nothing of ours is mocked.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from unittest.mock import ANY
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.test import override_settings
from rest_framework.test import APIClient

from clinic.models import AuditEvent, Role, Room
from clinic.tasks import purge_idempotency_keys
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.factories import PASSWORD, HandpieceFactory, RoomFactory, UserFactory
from tests.helpers import PROBLEM, PROBLEM_MEMBERS, assert_problem

TOKEN = "/api/v1/auth/token/"
LOGOUT = "/api/v1/auth/logout/"
CLINIC = "/api/v1/clinic/"
STAFF = "/api/v1/staff/"
ROOMS = "/api/v1/rooms/"
HANDPIECES = "/api/v1/handpieces/"
HEALTH = "/healthz/"
SCHEMA = "/api/schema/?format=json"
DOCS = "/api/docs/"

ROLES = [Role.ADMIN, Role.FRONT_DESK, Role.PROVIDER, Role.AUDITOR]
NEW_PASSWORD = "a-Long-pass-1"
DEFAULT_SETTINGS = {
    "screening_valid_days": 90,
    "min_interval_days": 21,
    "default_interval_days": 30,
    "isotretinoin_washout_months": 6,
    "reminder_lead_hours": 24,
    "day_of_attestation_required": True,  # v1.1
}

pytestmark = pytest.mark.django_db


# --- helpers -----------------------------------------------------------------------------------


def login(username: str, password: str = PASSWORD, client: APIClient | None = None):
    return (client or APIClient()).post(
        TOKEN, {"username": username, "password": password}, format="json"
    )


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def clinic_body(clinic, **changes) -> dict:
    return {
        "id": str(clinic.id),
        "name": clinic.name,
        "timezone": clinic.timezone,
        **DEFAULT_SETTINGS,
        **changes,
    }


def staff_body(user) -> dict:
    return {
        "id": str(user.id),
        "username": user.username,
        "full_name": user.full_name,
        "role": user.role,
        "email": user.email,
    }


def listed(client: APIClient, path: str) -> list[dict]:
    response = client.get(path, {"page_size": 200})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["next"] is None
    return body["results"]


def new_staff(username: str = "pat", role: str = Role.PROVIDER) -> dict:
    return {"username": username, "password": NEW_PASSWORD, "full_name": "Pat Lee", "role": role}


# --- auth: token issue -------------------------------------------------------------------------


def test_token_issue_answers_a_working_token_and_its_expiry(front_desk):
    issued_at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    with time_machine.travel(issued_at, tick=False):
        response = login(front_desk.username)

        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        body = response.json()
        assert set(body) == {"token", "expires_at"}
        assert isinstance(body["token"], str) and body["token"]
        expires_at = datetime.fromisoformat(body["expires_at"])
        assert expires_at.utcoffset() is not None  # ISO 8601 with an offset
        assert expires_at == issued_at + settings.REST_KNOX["TOKEN_TTL"]

        me = bearer(body["token"]).get(CLINIC)
        assert me.status_code == 200
        assert me.json()["id"] == str(front_desk.clinic_id)

    with time_machine.travel(expires_at + timedelta(seconds=1), tick=False):
        expired = bearer(body["token"]).get(CLINIC)
    assert_problem(expired, 401, "authentication_failed")


def test_token_issue_needs_no_auth_and_ignores_a_stale_bearer_header(front_desk):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer revoked-or-expired")
    response = login(front_desk.username, client=client)
    assert response.status_code == 200
    assert set(response.json()) == {"token", "expires_at"}


@pytest.mark.parametrize("role", ROLES)
def test_every_role_can_log_in(make_user, clinic, role):
    user = make_user(role, clinic)
    response = login(user.username)
    assert response.status_code == 200
    assert bearer(response.json()["token"]).get(CLINIC).status_code == 200


@pytest.mark.parametrize(
    "case", ["wrong password", "unknown username", "inactive user", "no clinic (superuser)"]
)
def test_a_bad_login_is_401_authentication_failed(front_desk, django_user_model, case):
    username, password = front_desk.username, PASSWORD
    if case == "wrong password":
        password = "not-the-password"
    elif case == "unknown username":
        username = "nobody-here"
    elif case == "inactive user":
        front_desk.is_active = False
        front_desk.save(update_fields=["is_active"])
    else:
        django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
        username = "root"

    body = assert_problem(login(username, password), 401, "authentication_failed")
    assert body["detail"] == "Invalid username or password."


def test_a_login_body_without_a_password_is_400_invalid(front_desk):
    response = APIClient().post(TOKEN, {"username": front_desk.username}, format="json")
    assert_problem(response, 400, "invalid", errors={"password": ["This field is required."]})


@override_settings(LOGIN_FAILURE_LIMIT=3)
def test_too_many_failed_logins_are_429_throttled_even_with_the_right_password(front_desk):
    for _ in range(3):
        assert_problem(login(front_desk.username, "wrong"), 401, "authentication_failed")
    response = login(front_desk.username)
    assert_problem(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0


def test_a_very_long_login_name_is_refused_not_crashed():
    # "İ" lower-cases to two characters; the failed-login counter must still cope.
    assert_problem(login("İ" * 150, "wrong"), 401, "authentication_failed")


# --- auth: what protected endpoints answer without a good token ---------------------------------


def test_no_token_is_401_not_authenticated_with_a_bearer_challenge():
    response = APIClient().get(CLINIC)
    body = assert_problem(response, 401, "not_authenticated")
    assert body["title"] == "Not authenticated"
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Bearer not-a-real-token", "Bearer", "Bearer a b"])
def test_a_bad_bearer_token_is_401_authentication_failed(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert_problem(client.get(CLINIC), 401, "authentication_failed")


def test_a_token_under_another_scheme_is_401_not_authenticated(front_desk):
    token = login(front_desk.username).json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert_problem(client.get(CLINIC), 401, "not_authenticated")


# --- auth: logout ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_logout_is_204_and_that_token_stops_working(make_user, clinic, role):
    user = make_user(role, clinic)
    token = login(user.username).json()["token"]
    other_token = login(user.username).json()["token"]
    client = bearer(token)

    response = client.post(LOGOUT)
    assert response.status_code == 204
    assert response.content == b""

    assert_problem(client.get(CLINIC), 401, "authentication_failed")
    assert_problem(client.post(LOGOUT), 401, "authentication_failed")
    # Only the token used is revoked: the user's other session goes on.
    assert bearer(other_token).get(CLINIC).status_code == 200


def test_logout_without_a_token_is_401_not_authenticated():
    assert_problem(APIClient().post(LOGOUT), 401, "not_authenticated")


# --- clinic ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_its_clinic_with_the_contract_fields_and_defaults(
    staff_by_role, api, clinic, role
):
    response = api(staff_by_role[role]).get(CLINIC)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == clinic_body(clinic)


def test_create_clinic_command_makes_a_clinic_with_the_contract_defaults(capsys):
    call_command(
        "create_clinic",
        "--name=Glow Aesthetics",
        "--timezone=Europe/Berlin",
        "--admin-username=glow_admin",
        f"--admin-password={NEW_PASSWORD}",
    )
    printed = json.loads(capsys.readouterr().out.strip())
    assert set(printed) == {"clinic_id"}

    token = login("glow_admin", NEW_PASSWORD).json()["token"]
    response = bearer(token).get(CLINIC)
    assert response.status_code == 200
    assert response.json() == {
        "id": printed["clinic_id"],
        "name": "Glow Aesthetics",
        "timezone": "Europe/Berlin",
        **DEFAULT_SETTINGS,
    }


def test_admin_patches_every_clinic_setting(admin, api, clinic):
    changes = {
        "name": "Radiance Skin Studio",
        "timezone": "Europe/Paris",
        "screening_valid_days": 120,
        "min_interval_days": 28,
        "default_interval_days": 42,
        "isotretinoin_washout_months": 12,
        "reminder_lead_hours": 48,
        "day_of_attestation_required": False,
    }
    client = api(admin)
    response = client.patch(CLINIC, changes, format="json")
    assert response.status_code == 200
    expected = {"id": str(clinic.id), **changes}
    assert response.json() == expected
    assert client.get(CLINIC).json() == expected


def test_a_partial_patch_changes_only_what_it_names(admin, api, clinic):
    response = api(admin).patch(CLINIC, {"reminder_lead_hours": 12}, format="json")
    assert response.status_code == 200
    assert response.json() == clinic_body(clinic, reminder_lead_hours=12)


def test_the_clinic_id_is_read_only(admin, api, clinic):
    response = api(admin).patch(CLINIC, {"id": str(uuid.uuid4())}, format="json")
    assert response.status_code == 200
    assert response.json() == clinic_body(clinic)


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"timezone": "Mars/Olympus"}, {"timezone"}),
        ({"name": ""}, {"name"}),
        ({"screening_valid_days": 0}, {"screening_valid_days"}),
        ({"min_interval_days": "three weeks"}, {"min_interval_days"}),
        ({"reminder_lead_hours": None}, {"reminder_lead_hours"}),
        # Below the clinic's minimum interval (21).
        ({"default_interval_days": 14}, {"default_interval_days"}),
    ],
)
def test_a_bad_clinic_setting_is_400_invalid_and_changes_nothing(
    admin, api, clinic, changes, errors
):
    client = api(admin)
    response = client.patch(CLINIC, changes, format="json")
    body = assert_problem(response, 400, "invalid", errors=ANY)
    assert set(body["errors"]) == errors
    assert all(isinstance(m, str) and m for ms in body["errors"].values() for m in ms)
    assert client.get(CLINIC).json() == clinic_body(clinic)


# --- staff -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_admin_creates_staff_of_every_role_and_no_password_is_ever_returned(admin, api, role):
    client = api(admin)
    response = client.post(STAFF, new_staff("pat", role), format="json")

    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": body["id"],
        "username": "pat",
        "full_name": "Pat Lee",
        "role": role,
        "email": "",
    }
    uuid.UUID(body["id"])

    detail = client.get(f"{STAFF}{body['id']}/")
    assert detail.status_code == 200
    assert detail.json() == body
    rows = listed(client, STAFF)
    assert rows == sorted([staff_body(admin), body], key=lambda row: row["username"])
    for raw in (response.content, detail.content, client.get(STAFF).content):
        assert b"password" not in raw
        assert NEW_PASSWORD.encode() not in raw

    # The password given is the one that works.
    assert login("pat", NEW_PASSWORD).status_code == 200


def test_staff_list_is_exactly_this_clinics_staff(staff_by_role, api, other_clinic):
    UserFactory(clinic=other_clinic, role=Role.ADMIN)
    rows = listed(api(staff_by_role[Role.AUDITOR]), STAFF)
    expected = sorted((staff_body(u) for u in staff_by_role.values()), key=lambda r: r["username"])
    assert rows == expected


def test_a_taken_username_is_400_whatever_its_case(admin, api):
    client = api(admin)
    assert client.post(STAFF, new_staff("Sam"), format="json").status_code == 201
    response = client.post(STAFF, new_staff("sAM"), format="json")
    assert_problem(response, 400, "invalid", errors={"username": ["This username is taken."]})


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"username", "password", "role"}),
        ({**new_staff(), "role": "wizard"}, {"role"}),
        ({**new_staff(), "password": "123"}, {"password"}),
        ({**new_staff(), "username": "has space"}, {"username"}),
        ({**new_staff(), "full_name": ["Pat"]}, {"full_name"}),
    ],
)
def test_bad_staff_bodies_are_400_invalid_per_field(admin, api, body, errors):
    client = api(admin)
    response = client.post(STAFF, body, format="json")
    problem = assert_problem(response, 400, "invalid", errors=ANY)
    assert set(problem["errors"]) == errors
    assert listed(client, STAFF) == [staff_body(admin)]


def test_an_unknown_role_names_the_choice(admin, api):
    response = api(admin).post(STAFF, {**new_staff(), "role": "wizard"}, format="json")
    assert_problem(response, 400, "invalid", errors={"role": ['"wizard" is not a valid choice.']})


# --- rooms and handpieces ----------------------------------------------------------------------

RESOURCES = [
    pytest.param(ROOMS, "name", "Treatment 1", "TREATMENT 1", id="rooms"),
    pytest.param(HANDPIECES, "serial_number", "SP-000123", "SP-000123", id="handpieces"),
]


@pytest.mark.parametrize(("path", "field", "value", "_duplicate"), RESOURCES)
def test_admin_creates_and_reads_back(admin, api, path, field, value, _duplicate):
    client = api(admin)
    response = client.post(path, {field: value}, format="json")
    assert response.status_code == 201
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body == {"id": body["id"], field: value}
    uuid.UUID(body["id"])
    assert client.get(f"{path}{body['id']}/").json() == body
    assert listed(client, path) == [body]


@pytest.mark.parametrize(("path", "field", "value", "duplicate"), RESOURCES)
def test_a_duplicate_in_the_same_clinic_is_400_invalid(admin, api, path, field, value, duplicate):
    client = api(admin)
    first = client.post(path, {field: value}, format="json").json()
    response = client.post(path, {field: duplicate}, format="json")
    message = {
        "name": "A room with this name already exists.",
        "serial_number": "A handpiece with this serial number exists.",
    }[field]
    assert_problem(response, 400, "invalid", errors={field: [message]})
    assert listed(client, path) == [first]


@pytest.mark.parametrize(("path", "field", "value", "_duplicate"), RESOURCES)
def test_the_same_name_in_another_clinic_is_fine(
    admin, api, make_user, other_clinic, path, field, value, _duplicate
):
    theirs = api(make_user(Role.ADMIN, other_clinic)).post(path, {field: value}, format="json")
    ours = api(admin).post(path, {field: value}, format="json")
    assert (theirs.status_code, ours.status_code) == (201, 201)
    assert ours.json()["id"] != theirs.json()["id"]


MISSING = object()


@pytest.mark.parametrize(("path", "field", "_value", "_duplicate"), RESOURCES)
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (MISSING, "This field is required."),
        ("", "This field may not be blank."),
        ("   ", "This field may not be blank."),
        (["a"], "Not a valid string."),
        (None, "This field may not be null."),
    ],
)
def test_a_bad_body_is_400_invalid(admin, api, path, field, _value, _duplicate, value, message):
    body = {} if value is MISSING else {field: value}
    response = api(admin).post(path, body, format="json")
    assert_problem(response, 400, "invalid", errors={field: [message]})
    assert listed(api(admin), path) == []


# --- roles -------------------------------------------------------------------------------------


@pytest.fixture
def things(admin):
    room = RoomFactory(clinic=admin.clinic)
    handpiece = HandpieceFactory(clinic=admin.clinic)
    return SimpleNamespace(room=room, handpiece=handpiece, admin=admin)


READ_PATHS = [
    lambda t: CLINIC,
    lambda t: STAFF,
    lambda t: f"{STAFF}{t.admin.id}/",
    lambda t: ROOMS,
    lambda t: f"{ROOMS}{t.room.id}/",
    lambda t: HANDPIECES,
    lambda t: f"{HANDPIECES}{t.handpiece.id}/",
]

# (method, path, body, success status): the contract's writes, all admin-only.
WRITES = [
    pytest.param("patch", CLINIC, {"reminder_lead_hours": 48}, 200, id="patch-clinic"),
    pytest.param("post", STAFF, new_staff("newbie", Role.FRONT_DESK), 201, id="post-staff"),
    pytest.param("post", ROOMS, {"name": "Treatment 3"}, 201, id="post-room"),
    pytest.param("post", HANDPIECES, {"serial_number": "SP-9"}, 201, id="post-handpiece"),
]


def snapshot(client: APIClient) -> dict:
    return {
        "clinic": client.get(CLINIC).json(),
        "staff": listed(client, STAFF),
        "rooms": listed(client, ROOMS),
        "handpieces": listed(client, HANDPIECES),
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", READ_PATHS)
def test_every_role_reads_everything_here(staff_by_role, things, api, role, path):
    response = api(staff_by_role[role]).get(path(things))
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "body", "ok"), WRITES)
def test_only_admin_writes(staff_by_role, things, api, role, method, path, body, ok):
    before = snapshot(api(staff_by_role[Role.ADMIN]))
    response = getattr(api(staff_by_role[role]), method)(path, body, format="json")
    if role == Role.ADMIN:
        assert response.status_code == ok, response.content
        return
    assert_problem(response, 403, "permission_denied")
    assert snapshot(api(staff_by_role[Role.ADMIN])) == before


@pytest.mark.parametrize(("method", "path", "body", "_ok"), WRITES)
@pytest.mark.parametrize("idempotency_key", [None, "auditor-key"])
def test_the_auditor_never_writes(
    auditor, admin, things, api, method, path, body, _ok, idempotency_key
):
    headers = {"HTTP_IDEMPOTENCY_KEY": idempotency_key} if idempotency_key else {}
    before = snapshot(api(admin))
    for _ in range(2):  # a retry with the same key is refused too, never replayed as success
        response = getattr(api(auditor), method)(path, body, format="json", **headers)
        assert_problem(response, 403, "permission_denied")
    assert snapshot(api(admin)) == before


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method", ["put", "delete"])
@pytest.mark.parametrize("kind", ["room", "handpiece"])
def test_no_role_updates_or_deletes_rooms_and_handpieces(
    staff_by_role, things, api, role, method, kind
):
    obj = getattr(things, kind)
    path = f"/api/v1/{kind}s/{obj.id}/"
    response = getattr(api(staff_by_role[role]), method)(path, {"name": "x"}, format="json")
    if role == Role.ADMIN:
        assert_problem(response, 405, "method_not_allowed")
    else:
        assert_problem(response, 403, "permission_denied")
    assert api(staff_by_role[Role.ADMIN]).get(path).status_code == 200


# --- clinic isolation --------------------------------------------------------------------------

FOREIGN = {
    "staff": lambda clinic: UserFactory(clinic=clinic, role=Role.PROVIDER),
    "rooms": lambda clinic: RoomFactory(clinic=clinic),
    "handpieces": lambda clinic: HandpieceFactory(clinic=clinic),
}


def comparable(response) -> tuple:
    headers = {k: v for k, v in response.items() if k.lower() != "x-request-id"}
    return response.status_code, headers, response.content


@pytest.mark.parametrize("kind", sorted(FOREIGN))
@pytest.mark.parametrize("role", ROLES)
def test_another_clinics_object_is_404_exactly_like_a_random_id(
    staff_by_role, api, other_clinic, kind, role
):
    theirs = FOREIGN[kind](other_clinic)
    client = api(staff_by_role[role])

    foreign = client.get(f"/api/v1/{kind}/{theirs.id}/")
    missing = client.get(f"/api/v1/{kind}/{uuid.uuid4()}/")

    assert_problem(foreign, 404, "not_found")
    assert comparable(foreign) == comparable(missing)
    assert str(theirs.id) not in {row["id"] for row in listed(client, f"/api/v1/{kind}/")}


def test_each_clinic_sees_only_its_own_lists(admin, api, other_clinic):
    ours = {
        "rooms": RoomFactory(clinic=admin.clinic),
        "handpieces": HandpieceFactory(clinic=admin.clinic),
    }
    for make in FOREIGN.values():
        make(other_clinic)
    client = api(admin)
    assert listed(client, ROOMS) == [{"id": str(ours["rooms"].id), "name": ours["rooms"].name}]
    assert listed(client, HANDPIECES) == [
        {"id": str(ours["handpieces"].id), "serial_number": ours["handpieces"].serial_number}
    ]
    assert listed(client, STAFF) == [staff_body(admin)]


def test_a_clinic_patch_touches_only_the_admins_clinic(admin, api, make_user, other_clinic):
    their_admin = api(make_user(Role.ADMIN, other_clinic))
    before = their_admin.get(CLINIC).json()
    assert api(admin).patch(CLINIC, {"reminder_lead_hours": 72}, format="json").status_code == 200
    assert their_admin.get(CLINIC).json() == before
    assert before["id"] == str(other_clinic.id)


def test_staff_created_by_an_admin_join_that_admins_clinic(admin, api, other_clinic):
    created = api(admin).post(STAFF, new_staff("nurse_kim"), format="json").json()
    token = login("nurse_kim", NEW_PASSWORD).json()["token"]
    assert bearer(token).get(CLINIC).json()["id"] == str(admin.clinic_id)
    assert created in listed(bearer(token), STAFF)


# --- pagination --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [STAFF, ROOMS, HANDPIECES])
def test_every_list_has_the_pagination_shape(admin, api, path):
    body = api(admin).get(path).json()
    assert set(body) == {"results", "next", "previous"}
    assert isinstance(body["results"], list)
    assert (body["next"], body["previous"]) == (None, None)


def test_pages_link_to_each_other(admin, api):
    names = [f"Room {i}" for i in range(5)]
    for name in names:
        RoomFactory(clinic=admin.clinic, name=name)
    client = api(admin)

    first = client.get(ROOMS, {"page_size": 2}).json()
    assert [row["name"] for row in first["results"]] == names[0:2]
    assert first["previous"] is None
    assert parse_qs(urlsplit(first["next"]).query)["page_size"] == ["2"]

    second = client.get(first["next"]).json()
    assert [row["name"] for row in second["results"]] == names[2:4]
    third = client.get(second["next"]).json()
    assert [row["name"] for row in third["results"]] == names[4:]
    assert third["next"] is None

    assert client.get(second["previous"]).json() == first
    assert client.get(third["previous"]).json() == second


@pytest.mark.parametrize("asked", [200, 201, 1000, 10**12])
def test_page_size_is_clamped_at_200(admin, api, asked):
    Room.objects.bulk_create(
        RoomFactory.build(clinic=admin.clinic, name=f"Room {i:03d}") for i in range(201)
    )
    client = api(admin)
    page = client.get(ROOMS, {"page_size": asked}).json()
    assert len(page["results"]) == 200
    assert page["results"][0]["name"] == "Room 000"
    rest = client.get(page["next"]).json()
    assert [row["name"] for row in rest["results"]] == ["Room 200"]
    assert rest["next"] is None


# --- problem details ---------------------------------------------------------------------------


def _reuse_a_key(ctx):
    ctx.admin.post(ROOMS, {"name": "A"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    return ctx.admin.post(ROOMS, {"name": "B"}, format="json", HTTP_IDEMPOTENCY_KEY="k")


def _bad_token(ctx):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer nope")
    return client.get(CLINIC)


ERROR_CASES: dict[str, tuple[Callable[[SimpleNamespace], object], int, str]] = {
    "malformed json": (
        lambda c: c.admin.post(ROOMS, data=b"{not json", content_type="application/json"),
        400,
        "invalid",
    ),
    "wrong type": (lambda c: c.admin.patch(CLINIC, {"reminder_lead_hours": "x"}), 400, "invalid"),
    "a list, not an object": (lambda c: c.admin.post(ROOMS, [1], format="json"), 400, "invalid"),
    "idempotency key too long": (
        lambda c: c.admin.post(ROOMS, {"name": "A"}, format="json", HTTP_IDEMPOTENCY_KEY="k" * 256),
        400,
        "invalid",
    ),
    "no token": (lambda c: APIClient().get(ROOMS), 401, "not_authenticated"),
    "bad token": (_bad_token, 401, "authentication_failed"),
    "bad login": (lambda c: login(c.user.username, "wrong"), 401, "authentication_failed"),
    "role": (lambda c: c.front_desk.post(ROOMS, {"name": "A"}), 403, "permission_denied"),
    "unknown id": (lambda c: c.admin.get(f"{ROOMS}{uuid.uuid4()}/"), 404, "not_found"),
    "unknown url": (lambda c: c.admin.get("/api/v1/no-such-thing/"), 404, "not_found"),
    "unknown page": (lambda c: c.admin.get(ROOMS, {"page": 99}), 400, "invalid"),
    "method": (lambda c: c.admin.delete(CLINIC), 405, "method_not_allowed"),
    "not acceptable": (
        lambda c: c.admin.get(CLINIC, HTTP_ACCEPT="text/html"),
        406,
        "not_acceptable",
    ),
    "body too large": (
        lambda c: c.admin.post(
            ROOMS,
            data=json.dumps({"name": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}),
            content_type="application/json",
        ),
        413,
        "request_too_large",
    ),
    "form body": (
        lambda c: c.admin.post(ROOMS, {"name": "A"}, format="multipart"),
        415,
        "unsupported_media_type",
    ),
    "key reused": (_reuse_a_key, 422, "idempotency_key_reused"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_every_error_is_problem_json_with_a_code(admin, front_desk, api, case):
    make, status, code = ERROR_CASES[case]
    ctx = SimpleNamespace(admin=api(admin), front_desk=api(front_desk), user=front_desk)
    response = make(ctx)
    assert_problem(response, status, code, **{k: ANY for k in response.json().keys() & {"errors"}})


def test_an_oversized_body_is_413_with_or_without_an_idempotency_key(admin, api):
    client = api(admin)
    data = json.dumps({"name": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})
    for headers in ({}, {"HTTP_IDEMPOTENCY_KEY": "big"}):
        response = client.post(ROOMS, data=data, content_type="application/json", **headers)
        assert_problem(response, 413, "request_too_large")
    assert listed(client, ROOMS) == []


def test_field_errors_are_listed_per_field(admin, api):
    response = api(admin).post(ROOMS, {}, format="json")
    assert_problem(response, 400, "invalid", errors={"name": ["This field is required."]})


def test_a_long_client_request_id_never_breaks_a_write(admin, api, front_desk):
    request_id = "r" * 200
    response = api(admin).post(
        ROOMS, {"name": "Treatment 1"}, format="json", HTTP_X_REQUEST_ID=request_id
    )
    assert response.status_code == 201, response.content
    assert (
        login(front_desk.username, client=APIClient(HTTP_X_REQUEST_ID=request_id)).status_code
        == 200
    )


# --- Idempotency-Key ---------------------------------------------------------------------------


def test_a_replay_answers_the_first_response_and_creates_nothing(admin, api):
    client = api(admin)
    first = client.post(ROOMS, {"name": "Lotus"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post(ROOMS, {"name": "Lotus"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert first.status_code == 201
    assert (again.status_code, again["Content-Type"], again.json()) == (
        201,
        "application/json",
        first.json(),
    )
    assert listed(client, ROOMS) == [first.json()]
    assert AuditEvent.objects.filter(action="room.create").count() == 1
    # Without the key the same body is a new request, and this one is a duplicate.
    assert_problem(
        client.post(ROOMS, {"name": "Lotus"}, format="json"),
        400,
        "invalid",
        errors={"name": ["A room with this name already exists."]},
    )


def test_a_replayed_staff_creation_creates_one_user_and_shows_no_password(admin, api):
    client = api(admin)
    first = client.post(STAFF, new_staff("kim"), format="json", HTTP_IDEMPOTENCY_KEY="staff-1")
    again = client.post(STAFF, new_staff("kim"), format="json", HTTP_IDEMPOTENCY_KEY="staff-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert b"password" not in again.content
    assert listed(client, STAFF) == sorted(
        [staff_body(admin), first.json()], key=lambda r: r["username"]
    )


def test_a_replay_of_an_error_answers_the_same_error(admin, api):
    client = api(admin)
    client.post(ROOMS, {"name": "Lotus"}, format="json")
    first = client.post(ROOMS, {"name": "LOTUS"}, format="json", HTTP_IDEMPOTENCY_KEY="dup")
    again = client.post(ROOMS, {"name": "LOTUS"}, format="json", HTTP_IDEMPOTENCY_KEY="dup")
    assert_problem(
        first, 400, "invalid", errors={"name": ["A room with this name already exists."]}
    )
    assert (again.status_code, again["Content-Type"], again.json()) == (
        400,
        PROBLEM,
        first.json(),
    )


@pytest.mark.parametrize(
    ("path", "body"),
    [(ROOMS, {"name": "Orchid"}), (HANDPIECES, {"serial_number": "SP-1"})],
    ids=["same endpoint", "another endpoint"],
)
def test_the_same_key_with_another_request_is_422_and_creates_nothing(admin, api, path, body):
    client = api(admin)
    first = client.post(ROOMS, {"name": "Lotus"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    response = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert_problem(response, 422, "idempotency_key_reused")
    assert listed(client, ROOMS) == [first.json()]
    assert listed(client, HANDPIECES) == []
    # The key still stands for its first request.
    replay = client.post(ROOMS, {"name": "Lotus"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert replay.json() == first.json()


def test_keys_are_scoped_to_the_user(admin, api, make_user, other_clinic):
    colleague = make_user(Role.ADMIN, admin.clinic)
    stranger = make_user(Role.ADMIN, other_clinic)
    mine = api(admin).post(ROOMS, {"name": "Lotus"}, format="json", HTTP_IDEMPOTENCY_KEY="k")

    # Another user's different body with my key: their own first request, not a reuse.
    colleagues = api(colleague).post(
        ROOMS, {"name": "Orchid"}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    # Another clinic's user with my key and my body: their own new room, not my response.
    strangers = api(stranger).post(
        ROOMS, {"name": "Lotus"}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )

    assert (mine.status_code, colleagues.status_code, strangers.status_code) == (201, 201, 201)
    assert len({mine.json()["id"], colleagues.json()["id"], strangers.json()["id"]}) == 3
    assert [row["name"] for row in listed(api(admin), ROOMS)] == ["Lotus", "Orchid"]
    assert [row["name"] for row in listed(api(stranger), ROOMS)] == ["Lotus"]


def test_keys_belong_to_the_user_not_the_token(admin):
    first_session = bearer(login(admin.username).json()["token"])
    second_session = bearer(login(admin.username).json()["token"])
    first = first_session.post(ROOMS, {"name": "Lotus"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    again = second_session.post(ROOMS, {"name": "Lotus"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert (again.status_code, again.json()) == (201, first.json())
    assert len(listed(second_session, ROOMS)) == 1


def test_keys_are_kept_at_least_24_hours(admin, api):
    first = api(admin).post(ROOMS, {"name": "Lotus"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    with time_machine.travel(datetime.now(tz=UTC) + timedelta(hours=24, minutes=5)):
        purge_idempotency_keys()  # what beat runs hourly
        again = api(admin).post(ROOMS, {"name": "Lotus"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert (again.status_code, again.json()) == (201, first.json())
    # A fresh session: the first token expired (and was cleaned up) during those 24 hours.
    assert listed(api(admin), ROOMS) == [first.json()]


def _wait_for_a_backend_waiting_on_a_lock(timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)  # polling another connection's state; no clock is faked here
    raise AssertionError("the first request never started waiting")


@pytest.mark.django_db(transaction=True)
def test_a_replay_while_the_first_is_running_is_409_in_progress(admin, api):
    """An uncommitted room of the same name makes the first request's insert wait (unique
    index), so it is genuinely still running when the replay arrives."""
    holding, release = threading.Event(), threading.Event()

    def hold_the_name():
        try:
            with transaction.atomic():
                Room.objects.create(clinic=admin.clinic, name="Lotus")
                holding.set()
                release.wait(30)
                transaction.set_rollback(True)
        finally:
            connection.close()

    def first_request():
        try:
            return api(admin).post(
                ROOMS, {"name": "Lotus"}, format="json", HTTP_IDEMPOTENCY_KEY="slow"
            )
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        holder = pool.submit(hold_the_name)
        try:
            assert holding.wait(30)
            first = pool.submit(first_request)
            _wait_for_a_backend_waiting_on_a_lock()
            during = api(admin).post(
                ROOMS, {"name": "Lotus"}, format="json", HTTP_IDEMPOTENCY_KEY="slow"
            )
        finally:
            release.set()
        holder.result(30)
        first_response = first.result(30)

    assert_problem(during, 409, "idempotency_in_progress")
    assert first_response.status_code == 201, first_response.content
    after = api(admin).post(ROOMS, {"name": "Lotus"}, format="json", HTTP_IDEMPOTENCY_KEY="slow")
    assert (after.status_code, after.json()) == (201, first_response.json())
    assert listed(api(admin), ROOMS) == [first_response.json()]


# --- health ------------------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer stale-token"])
def test_health_needs_no_auth(authorization):
    client = APIClient()
    if authorization:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    response = client.get(HEALTH)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"database": "ok", "broker": "ok"}


@override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0")
def test_health_is_503_naming_the_broker_when_it_is_down():
    response = APIClient().get(HEALTH)
    assert_problem(response, 503, "service_unavailable", database="ok", broker="unavailable")


# --- schema and docs ---------------------------------------------------------------------------

FOUNDATION_OPERATIONS = {
    "/api/v1/auth/token/": {"post"},
    "/api/v1/auth/logout/": {"post"},
    "/api/v1/clinic/": {"get", "patch"},
    "/api/v1/staff/": {"get", "post"},
    "/api/v1/staff/{id}/": {"get"},
    "/api/v1/rooms/": {"get", "post"},
    "/api/v1/rooms/{id}/": {"get"},
    "/api/v1/handpieces/": {"get", "post"},
    "/api/v1/handpieces/{id}/": {"get"},
    "/healthz/": {"get"},
}
PUBLIC = {("/api/v1/auth/token/", "post"), ("/healthz/", "get")}


@pytest.fixture
def schema() -> dict:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer stale-token")  # ignored: the schema is public
    response = client.get(SCHEMA)
    assert response.status_code == 200
    assert (
        response["Content-Type"].startswith("application/") and "json" in response["Content-Type"]
    )
    return json.loads(response.content)


def resolve(schema: dict, node: dict) -> dict:
    ref = node.get("$ref")
    return schema["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else node


def operation(schema: dict, path: str, method: str) -> dict:
    return schema["paths"][path][method]


def body_schema(schema: dict, path: str, method: str, status: str) -> dict:
    response = operation(schema, path, method)["responses"][status]
    return resolve(schema, response["content"]["application/json"]["schema"])


def test_schema_is_openapi_3_and_lists_the_foundation_endpoints(schema):
    assert schema["openapi"].startswith("3.")
    present = {path: set(schema["paths"].get(path, {})) for path in FOUNDATION_OPERATIONS}
    assert present == FOUNDATION_OPERATIONS


def test_schema_error_body_is_the_problem_document(schema):
    problem = schema["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == PROBLEM_MEMBERS
    assert PROBLEM_MEMBERS | {"errors"} <= set(problem["properties"])
    for path, methods in FOUNDATION_OPERATIONS.items():
        for method in methods:
            responses = operation(schema, path, method)["responses"]
            errors = {code: r for code, r in responses.items() if int(code) >= 400}
            assert errors, (path, method)
            for code, response in errors.items():
                assert set(response["content"]) == {PROBLEM}, (path, method, code)
                assert resolve(schema, response["content"][PROBLEM]["schema"]) == problem


def test_schema_documents_each_operations_response_codes(schema):
    for path, methods in FOUNDATION_OPERATIONS.items():
        for method in methods:
            codes = set(operation(schema, path, method)["responses"])
            if (path, method) in PUBLIC:
                assert not codes & {"403"}, (path, method)
            else:
                assert {"401", "403"} <= codes, (path, method)
            if "{id}" in path:
                assert "404" in codes, (path, method)
            if method in {"post", "patch"}:
                assert "400" in codes, (path, method)
    assert set(operation(schema, "/healthz/", "get")["responses"]) == {"200", "500", "503"}
    assert {"200", "401", "429"} <= set(
        operation(schema, "/api/v1/auth/token/", "post")["responses"]
    )
    for path in ("/api/v1/staff/", "/api/v1/rooms/", "/api/v1/handpieces/"):
        post = operation(schema, path, "post")
        assert {"201", "409", "422"} <= set(post["responses"]), path
        names = {p["name"] for p in post.get("parameters", []) if p["in"] == "header"}
        assert "Idempotency-Key" in names, path


def test_schema_bodies_match_the_contract(schema):
    def properties(node: dict) -> set[str]:
        return set(node["properties"])

    assert properties(body_schema(schema, "/api/v1/auth/token/", "post", "200")) == {
        "token",
        "expires_at",
    }
    assert properties(body_schema(schema, "/api/v1/clinic/", "get", "200")) == {
        "id",
        "name",
        "timezone",
        *DEFAULT_SETTINGS,
    }
    assert properties(body_schema(schema, "/api/v1/staff/", "post", "201")) == {
        "id",
        "username",
        "full_name",
        "role",
        "email",  # v1.1
    }
    staff_request = resolve(
        schema,
        operation(schema, "/api/v1/staff/", "post")["requestBody"]["content"]["application/json"][
            "schema"
        ],
    )
    assert properties(staff_request) == {"username", "password", "full_name", "role", "email"}
    assert staff_request["properties"]["password"].get("writeOnly") is True
    for path in ("/api/v1/staff/", "/api/v1/rooms/", "/api/v1/handpieces/"):
        page = body_schema(schema, path, "get", "200")
        assert properties(page) == {"results", "next", "previous"}, path


@pytest.mark.parametrize("authorization", [None, "Bearer stale-token"])
def test_docs_need_no_auth(authorization):
    client = APIClient()
    if authorization:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    response = client.get(DOCS)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"/api/schema/" in response.content
