from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from clinic.models import AuditEvent, Role
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.factories import PASSWORD

TOKEN_URL = "/api/v1/auth/token/"


def login(username: str, password: str, client: APIClient | None = None):
    return (client or APIClient()).post(
        TOKEN_URL, {"username": username, "password": password}, format="json"
    )


@pytest.mark.django_db
def test_tokens_are_stored_hashed(front_desk):
    token = login(front_desk.username, PASSWORD).json()["token"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT digest, token_key FROM knox_authtoken")
        rows = cursor.fetchall()
    assert len(rows) == 1
    digest, token_key = rows[0]
    assert token not in digest
    assert token_key == token[: len(token_key)] and len(token_key) < len(token)


@pytest.mark.django_db
def test_bad_password_is_401_problem_and_audited(front_desk):
    response = login(front_desk.username, "wrong")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json() == {
        "type": "https://skinpen-clinic.example/problems/authentication_failed",
        "title": "Not authenticated",
        "status": 401,
        "detail": "Invalid username or password.",
        "code": "authentication_failed",
    }
    event = AuditEvent.objects.get(action="auth.login")
    assert (event.outcome, event.actor_label, event.clinic_id) == (
        "failed",
        front_desk.username,
        front_desk.clinic_id,
    )


@pytest.mark.django_db
def test_successful_login_is_audited(front_desk):
    login(front_desk.username, PASSWORD)
    event = AuditEvent.objects.get(action="auth.login")
    assert (event.outcome, event.actor_id) == ("success", front_desk.id)


@pytest.mark.django_db
def test_a_superuser_without_a_clinic_cannot_use_the_api(django_user_model, api):
    root = django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    assert login("root", PASSWORD).status_code == 401
    response = api(root).get("/api/v1/clinic/")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


@pytest.mark.django_db
@override_settings(LOGIN_FAILURE_LIMIT=3)
def test_the_window_passes_and_a_good_login_clears_failures(front_desk):
    for _ in range(3):
        login(front_desk.username, "wrong")
    # Forgotten a window (15 min) after the end of the delay (1 min) the last failure began.
    with time_machine.travel(timezone.now() + timedelta(minutes=17)):
        assert login(front_desk.username, "wrong").status_code == 401
        assert login(front_desk.username, PASSWORD).status_code == 200
        for _ in range(3):
            assert login(front_desk.username, "wrong").status_code == 401


@pytest.mark.django_db(transaction=True)
@override_settings(LOGIN_FAILURE_LIMIT=5)
def test_twenty_concurrent_bad_logins_let_at_most_the_limit_through(make_user, clinic):
    user = make_user(Role.PROVIDER, clinic)

    def attempt(_):
        try:
            return login(user.username, "wrong").status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(attempt, range(20)))

    assert statuses.count(401) == 5
    assert statuses.count(429) == 15


@pytest.mark.django_db
def test_login_names_the_user_whatever_the_case(make_user, clinic):
    user = make_user(Role.FRONT_DESK, clinic, username="SamJones")
    response = login("samjones", PASSWORD)
    assert response.status_code == 200
    assert AuditEvent.objects.get(action="auth.login", outcome="success").actor_id == user.id


@pytest.mark.django_db
def test_a_bad_login_names_the_bearer_scheme(front_desk):
    assert login(front_desk.username, "nope")["WWW-Authenticate"] == "Bearer"
