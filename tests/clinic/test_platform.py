"""Health, schema, the production check, create_clinic and the append-only audit trail."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.utils import InternalError, ProgrammingError
from django.test import override_settings
from rest_framework.test import APIClient

from clinic.models import AuditEvent, Clinic, Role, User
from scheduling.models import WorkingInterval

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_healthz_reports_database_and_broker():
    response = APIClient().get("/healthz/")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "broker": "ok"}


@pytest.mark.django_db
@override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0")
def test_healthz_names_the_broker_when_redis_is_unreachable():
    response = APIClient().get("/healthz/")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["database"], body["broker"], body["code"]) == (
        "ok",
        "unavailable",
        "service_unavailable",
    )


@pytest.mark.django_db
def test_schema_describes_errors_and_idempotency():
    response = APIClient().get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    rooms_post = schema["paths"]["/api/v1/rooms/"]["post"]
    assert {"201", "400", "401", "403", "409", "422"} <= set(rooms_post["responses"])
    assert "application/problem+json" in rooms_post["responses"]["400"]["content"]
    assert "Idempotency-Key" in {p["name"] for p in rooms_post["parameters"]}
    assert schema["paths"]["/api/v1/rooms/{id}/"]["get"]["responses"]["404"]
    assert APIClient().get("/api/docs/").status_code == 200


def test_production_mode_passes_check_deploy_without_warnings():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "clinic.settings",
        "DJANGO_ENV": "production",
        "SECRET_KEY": "k3#Zq9!vL2@pX8$mN5^rT1&wY7*bH4(jD6)fG0-sA" * 2,
        "ALLOWED_HOSTS": "clinic.example.com",
    }
    env.pop("DJANGO_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_mode_refuses_the_development_secret_key():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "clinic.settings", "DJANGO_ENV": "production"}
    env.pop("SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


@pytest.mark.django_db
def test_create_clinic_prints_the_clinic_id_and_the_admin_can_log_in(capsys):
    call_command(
        "create_clinic",
        "--name",
        "Glow",
        "--timezone",
        "Europe/Berlin",
        "--admin-username",
        "glow_admin",
        "--admin-password",
        "a-Long-pass-1",
    )
    printed = json.loads(capsys.readouterr().out.strip())
    clinic = Clinic.objects.get(pk=printed["clinic_id"])
    assert set(printed) == {"clinic_id"}
    assert (clinic.name, clinic.timezone) == ("Glow", "Europe/Berlin")
    assert User.objects.get(username="glow_admin").role == Role.ADMIN
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": "glow_admin", "password": "a-Long-pass-1"}
    )
    assert response.status_code == 200


@pytest.mark.django_db
def test_create_clinic_rejects_a_bad_timezone():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="timezone"):
        call_command(
            "create_clinic",
            "--name=X",
            "--timezone=Nowhere/Land",
            "--admin-username=x",
            "--admin-password=a-Long-pass-1",
        )
    assert not Clinic.objects.exists()


@pytest.mark.django_db
def test_two_clinics_are_isolated(api):
    for name in ("A", "B"):
        call_command(
            "create_clinic",
            f"--name={name}",
            "--timezone=UTC",
            f"--admin-username=admin_{name}",
            "--admin-password=a-Long-pass-1",
        )
    a, b = (User.objects.get(username=f"admin_{n}") for n in "AB")
    room = api(a).post("/api/v1/rooms/", {"name": "Shared name"}).json()
    assert api(b).get(f"/api/v1/rooms/{room['id']}/").status_code == 404
    assert api(b).post("/api/v1/rooms/", {"name": "Shared name"}).status_code == 201


@pytest.mark.django_db
def test_audit_events_cannot_be_changed_or_deleted(admin, api):
    api(admin).post("/api/v1/rooms/", {"name": "A"})
    event = AuditEvent.objects.get(action="room.create")
    assert event.request_id and event.actor_id == admin.id
    for statement in (
        "UPDATE clinic_auditevent SET action = 'x'",
        "DELETE FROM clinic_auditevent",
    ):
        with (
            pytest.raises((InternalError, ProgrammingError), match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    assert AuditEvent.objects.get(pk=event.pk).action == "room.create"


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_prints_a_login_per_role(capsys):
    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert Clinic.objects.filter(name="Demo Clinic").count() == 1
    demo_provider = User.objects.get(username="demo_provider")
    assert sorted(
        WorkingInterval.objects.filter(provider=demo_provider).values_list(
            "weekday", "starts_minute", "ends_minute"
        )
    ) == [(day, 9 * 60, 17 * 60) for day in range(5)]
    for role in Role.values:
        assert out.count(f"  {role}") == 2
    for username in ("demo_admin", "demo_front_desk", "demo_provider", "demo_auditor"):
        response = APIClient().post(
            "/api/v1/auth/token/", {"username": username, "password": "demo-Sk1nPen!"}
        )
        assert response.status_code == 200
