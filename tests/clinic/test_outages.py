"""PostgreSQL or Redis not answering: 503 problem+json `service_unavailable` with Retry-After,
never 500, so a client can tell an outage from a bug. The failures are real: the connection
goes to a port nothing listens on, or PostgreSQL terminates it (as a restart does)."""

import socket
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection
from django.test import Client, override_settings
from knox.models import AuthToken
from rest_framework.test import APIClient

from clinic.models import Role, Room
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.factories import PASSWORD

PROBLEM = "application/problem+json"


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def database_down(transactional_db) -> Iterator[None]:
    """The default database at a closed port until the test ends (then back, so the test's
    tables can be flushed)."""
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(closed_port()))
    yield
    connection.close()
    connection.settings_dict.clear()
    connection.settings_dict.update(saved)


@pytest.fixture
def signed_in(transactional_db, make_user, clinic):
    """An admin's client with a real token, made while the database still answers."""
    user = make_user(Role.ADMIN, clinic)
    _instance, token = AuthToken.objects.create(user=user)
    client = APIClient()
    client.raise_request_exception = False
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    client.user = user
    return client


def assert_unavailable(response, part: str) -> dict:
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == PROBLEM
    assert response["Retry-After"] == "5"
    body = response.json()
    assert (body["code"], body["status"], body[part]) == ("service_unavailable", 503, "unavailable")
    return body


def test_with_the_database_down_every_call_is_503(signed_in, database_down):
    client = signed_in
    anonymous = APIClient()
    anonymous.raise_request_exception = False
    assert_unavailable(client.get("/api/v1/patients/"), "database")
    assert_unavailable(client.get("/api/v1/clinic/"), "database")
    assert_unavailable(client.post("/api/v1/rooms/", {"name": "A"}, format="json"), "database")
    # The Idempotency-Key middleware reads the token before any view runs: outside DRF.
    response = client.post(
        "/api/v1/rooms/", {"name": "A"}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert_unavailable(response, "database")
    login = {"username": client.user.username, "password": PASSWORD}
    assert_unavailable(anonymous.post("/api/v1/auth/token/", login, format="json"), "database")


def test_healthz_names_the_database(transactional_db, database_down):
    response = APIClient().get("/healthz/")
    body = assert_unavailable(response, "database")
    assert (body["database"], body["broker"]) == ("unavailable", "ok")


def test_the_back_office_login_is_503_too(transactional_db, database_down):
    client = Client(raise_request_exception=False)
    response = client.post(
        "/admin/login/", {"username": "x", "password": "y", "otp_token": "123456"}
    )
    assert_unavailable(response, "database")


def test_a_connection_postgresql_terminated_is_503_then_the_next_call_works(signed_in):
    client = signed_in
    assert client.get("/api/v1/rooms/").status_code == 200
    pid = connection.connection.info.backend_pid
    # What a restart of PostgreSQL does to every open connection.
    url = connection.settings_dict
    with psycopg.connect(
        host=url["HOST"], port=url["PORT"], user=url["USER"], dbname=url["NAME"], autocommit=True
    ) as admin_connection:
        admin_connection.execute("SELECT pg_terminate_backend(%s)", [pid])
    assert_unavailable(client.post("/api/v1/rooms/", {"name": "A"}, format="json"), "database")
    # Django drops a connection that failed at the end of the request; the next one reconnects.
    connection.close_if_unusable_or_obsolete()
    response = client.post("/api/v1/rooms/", {"name": "A"}, format="json")
    assert response.status_code == 201, response.content
    assert Room.objects.count() == 1


@pytest.mark.django_db
def test_with_the_broker_down_healthz_names_it_and_writes_still_work(admin, api):
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{closed_port()}/0"):
        response = APIClient().get("/healthz/")
        body = assert_unavailable(response, "broker")
        assert (body["database"], body["broker"]) == ("ok", "unavailable")
        # Nothing a request does waits for the broker: tasks are published after commit, never
        # raising, and the scans publish what was missed.
        assert api(admin).post("/api/v1/rooms/", {"name": "A"}).status_code == 201
