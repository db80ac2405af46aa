"""Audit coverage: every read of patient data, every export, every refusal on patient data and
every login (API and back office) leaves an event naming actor, action, patient, request id
and outcome."""

from decimal import Decimal

import pytest
from django.test import Client

from clinic.models import AuditEvent, Role
from tests.clinic import totp
from tests.factories import (
    PASSWORD,
    UserFactory,
)
from treatments import services as treatment_services


@pytest.fixture
def treated(session_to_treat, provider, lot_a1, handpiece):
    """A treatment recorded through the service, with its aftercare plan."""
    return treatment_services.record_treatment(
        actor=provider,
        session=session_to_treat,
        tip_lot=lot_a1,
        depths=[("cheeks", Decimal("1.00"))],
    )


def events_of(response) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(request_id=response["X-Request-ID"]).order_by("sequence", "at")
    )


@pytest.mark.django_db
def test_every_read_of_patient_data_is_audited(api, auditor, treated, lot_a1):
    patient_id, session_id = treated.patient_id, treated.session_id
    series_id = treated.session.series_id
    client = api(auditor)
    reads = {
        "/api/v1/patients/": "patient.list",
        f"/api/v1/patients/{patient_id}/": "patient.read",
        f"/api/v1/patients/{patient_id}/eligibility/": "patient.eligibility",
        f"/api/v1/patients/{patient_id}/screenings/": "screening.list",
        "/api/v1/series/": "series.list",
        f"/api/v1/series/{series_id}/": "series.read",
        "/api/v1/sessions/": "session.list",
        f"/api/v1/sessions/{session_id}/": "session.read",
        f"/api/v1/sessions/{session_id}/treatment/": "treatment.read",
        f"/api/v1/sessions/{session_id}/treatment/amendments/": "treatment.read",
        f"/api/v1/sessions/{session_id}/aftercare/": "aftercare.read",
        f"/api/v1/tip-lots/{lot_a1.id}/usage/": "treatment.read",
        f"/api/v1/fhir/Patient/{patient_id}/$everything": "fhir.patient_everything",
    }
    for path, action in reads.items():
        response = client.get(path)
        assert response.status_code == 200, path
        events = events_of(response)
        assert [(e.action, e.patient_id, e.actor_id, e.outcome) for e in events] == [
            (action, patient_id, auditor.id, "success")
        ], path


@pytest.mark.django_db
def test_every_export_is_audited(api, auditor, treated):
    response = api(auditor).get("/api/v1/exports/tip-usage.csv")
    b"".join(response.streaming_content)
    assert [(e.action, e.actor_id) for e in events_of(response)] == [
        ("export.tip_usage", auditor.id)
    ]


@pytest.mark.django_db
def test_refusals_on_patient_data_are_audited(api, auditor, front_desk, provider, treated):
    session_id = treated.session_id
    attempts = [
        (auditor, "post", "/api/v1/patients/", "patient.create"),
        (auditor, "patch", f"/api/v1/patients/{treated.patient_id}/", "patient.partial_update"),
        (
            front_desk,
            "post",
            f"/api/v1/sessions/{session_id}/treatment/",
            "treatment_record.create",
        ),
        (provider, "get", "/api/v1/exports/tip-usage.csv", "tip_usage_export.get"),
        (front_desk, "get", "/api/v1/audit-events/", "audit_event.list"),
    ]
    for user, method, path, action in attempts:
        response = getattr(api(user), method)(path, {})
        assert response.status_code == 403, path
        assert [(e.action, e.actor_id, e.outcome) for e in events_of(response)] == [
            (action, user.id, "denied")
        ], path


@pytest.mark.django_db
def test_a_recall_reads_each_affected_patient(api, admin, treated, lot_a1):
    response = api(admin).post(f"/api/v1/tip-lots/{lot_a1.id}/recall/", {"reason": "Sterility"})
    assert response.status_code == 200
    assert [(e.action, e.object_type, e.patient_id) for e in events_of(response)] == [
        ("tip_lot.recall", "tip_lot", None),
        ("tip_lot.recall_affected_patient", "patient", treated.patient_id),
    ]


@pytest.mark.django_db
def test_back_office_logins_are_audited(clinic):
    admin = UserFactory(clinic=clinic, role=Role.ADMIN, is_staff=True)
    device = totp.enrol(admin)
    browser = Client()

    browser.post("/admin/login/", {"username": admin.username, "password": "wrong"})
    browser.post("/admin/login/", {"username": "nobody", "password": "wrong"})
    response = browser.post(
        "/admin/login/",
        {"username": admin.username, "password": PASSWORD, "otp_token": totp.code(device)},
    )
    assert response.status_code == 302

    logins = AuditEvent.objects.filter(action="auth.login").order_by("at")
    assert [(e.outcome, e.actor_id, e.actor_label, e.clinic_id, e.detail) for e in logins] == [
        ("failed", None, admin.username, clinic.id, {"via": "admin"}),
        ("failed", None, "nobody", None, {"via": "admin"}),
        ("success", admin.id, admin.username, clinic.id, {"via": "admin"}),
    ]


@pytest.mark.django_db
def test_api_logins_are_audited_once(clinic, front_desk):
    client = Client()
    client.post(
        "/api/v1/auth/token/",
        {"username": front_desk.username, "password": "wrong"},
        content_type="application/json",
    )
    client.post(
        "/api/v1/auth/token/",
        {"username": front_desk.username, "password": PASSWORD},
        content_type="application/json",
    )
    logins = AuditEvent.objects.filter(action="auth.login").order_by("at")
    assert [(e.outcome, e.clinic_id, e.detail) for e in logins] == [
        ("failed", clinic.id, {}),
        ("success", clinic.id, {}),
    ]
