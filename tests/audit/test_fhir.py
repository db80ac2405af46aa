"""`GET /api/v1/fhir/Patient/{id}/$everything`: a FHIR R4 Bundle, validated by fhir.resources.

fhir.resources ships R5 and R4B (4.3.0); the resources emitted use nothing that differs
between R4 (4.0.1) and R4B, so the R4B models validate them."""

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from clinic.models import AuditEvent, Role
from scheduling.models import SessionStatus
from tests.factories import PatientFactory, RoomFactory, ScreeningFactory
from tests.factories.scheduling import (
    SeriesFactory,
    SessionFactory,
    checked_in_fields,
    starts_today,
)
from treatments import services as treatment_services


def url(patient_id) -> str:
    return f"/api/v1/fhir/Patient/{patient_id}/$everything"


@pytest.fixture
def programme(clinic, provider, front_desk, lot_a1, handpiece):
    """A patient with a 3-session series: one treated (and amended), one booked, one
    cancelled; and a second, empty series."""
    patient = PatientFactory(
        clinic=clinic,
        first_name="Zoë",
        last_name="O'Brien",
        date_of_birth=date(1990, 5, 17),
        email="zoe@example.com",
        phone="+12025550123",
    )
    ScreeningFactory(
        patient=patient,
        screened_by=front_desk,
        screened_on=timezone.localdate(timezone=clinic.zone),
        keloid_history=True,
        warnings=["keloid_history"],
    )
    series = SeriesFactory(patient=patient, created_by=front_desk, planned_sessions=3)
    empty = SeriesFactory(patient=patient, created_by=front_desk, indication="fine_lines_wrinkles")
    now = timezone.now().replace(microsecond=0)
    starts_at = next(starts_today(clinic))
    treated = SessionFactory(
        series=series,
        provider=provider,
        room=RoomFactory(clinic=clinic, name="Room 1"),
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=1),
        **checked_in_fields(front_desk),
        created_by=front_desk,
    )
    booked = SessionFactory(
        series=series,
        provider=provider,
        starts_at=now + timedelta(days=30),
        ends_at=now + timedelta(days=30, hours=1),
        created_by=front_desk,
    )
    cancelled = SessionFactory(
        series=series,
        provider=provider,
        starts_at=now + timedelta(days=40),
        ends_at=now + timedelta(days=40, hours=1),
        status=SessionStatus.CANCELLED,
        cancel_reason="Patient travelling",
        created_by=front_desk,
    )
    record = treatment_services.record_treatment(
        actor=provider,
        session=treated,
        tip_lot=lot_a1,
        handpiece=handpiece,
        depths=[("cheeks", Decimal("1.25")), ("forehead", Decimal("0.50"))],
        notes="Tolerated well.",
        performed_at=now,
        acknowledged_warnings=["keloid_history"],
    )
    treatment_services.amend_treatment(
        actor=provider,
        record=record,
        reason="Forehead was 0.75",
        depths=[("cheeks", Decimal("1.25")), ("forehead", Decimal("0.75"))],
    )
    return patient, series, empty, treated, booked, cancelled, record


def by_type(bundle: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for entry in bundle["entry"]:
        out.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    return out


def references(value) -> list[str]:
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return found + [r for v in value.values() for r in references(v)]
    if isinstance(value, list):
        return [r for v in value for r in references(v)]
    return []


@pytest.mark.django_db
def test_the_bundle_is_valid_fhir_with_every_part(
    api, auditor, programme, clinic, lot_a1, provider
):
    patient, series, empty, treated, booked, cancelled, record = programme
    response = api(auditor).get(url(patient.id), HTTP_ACCEPT="application/fhir+json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    bundle = response.json()
    Bundle.model_validate(bundle)  # raises on anything that is not R4(B)
    for entry in bundle["entry"]:
        get_fhir_model_class(entry["resource"]["resourceType"]).model_validate(entry["resource"])

    assert (bundle["type"], bundle["total"], len(bundle["entry"])) == ("searchset", 10, 10)
    resources = by_type(bundle)
    assert {kind: len(items) for kind, items in resources.items()} == {
        "Patient": 1,
        "CarePlan": 2,
        "Appointment": 3,
        "Procedure": 1,
        "Device": 2,
        "Practitioner": 1,
    }
    full_urls = {entry["fullUrl"] for entry in bundle["entry"]}
    base = "http://testserver/api/v1/fhir/"
    assert f"{base}Patient/{patient.id}" in full_urls
    # Every reference resolves inside the Bundle.
    assert {base + ref for ref in references(bundle["entry"])} <= full_urls

    (fhir_patient,) = resources["Patient"]
    assert fhir_patient == {
        "resourceType": "Patient",
        "id": str(patient.id),
        "active": True,
        "name": [{"use": "official", "family": "O'Brien", "given": ["Zoë"]}],
        "birthDate": "1990-05-17",
        "managingOrganization": {"display": clinic.name},
        "telecom": [
            {"system": "email", "value": "zoe@example.com", "use": "home"},
            {"system": "phone", "value": "+12025550123", "use": "mobile"},
        ],
    }

    (procedure,) = resources["Procedure"]
    performed = timezone.localtime(record.performed_at, clinic.zone).isoformat()
    assert procedure["performedDateTime"] == performed
    assert procedure["performedDateTime"].endswith(("-05:00", "-04:00"))
    assert procedure["status"] == "completed"
    assert procedure["basedOn"] == [{"reference": f"CarePlan/{series.id}"}]
    assert [r["reference"] for r in procedure["usedReference"]] == [
        f"Device/{lot_a1.id}",
        f"Device/{record.handpiece_id}",
    ]
    assert procedure["bodySite"] == [{"text": "cheeks"}, {"text": "forehead"}]
    assert [n["text"] for n in procedure["note"]] == [
        "Needle depth, cheeks: 1.25 mm",
        "Needle depth, forehead: 0.75 mm",  # the amended value
        "Warnings acknowledged: keloid_history",
        "Tolerated well.",
        "Amended 1 time(s); latest reason: Forehead was 0.75",
    ]
    devices = {d["id"]: d for d in resources["Device"]}
    assert devices[str(lot_a1.id)] == {
        "resourceType": "Device",
        "id": str(lot_a1.id),
        "status": "active",
        "deviceName": [{"name": "SkinPen needle cartridge", "type": "user-friendly-name"}],
        "lotNumber": "LOT-A1",
        "expirationDate": lot_a1.expires_on.isoformat(),
        "udiCarrier": [{"deviceIdentifier": "00812345000019"}],
    }
    assert devices[str(record.handpiece_id)]["serialNumber"] == "SP-0042"

    appointments = {a["id"]: a for a in resources["Appointment"]}
    assert {k: a["status"] for k, a in appointments.items()} == {
        str(treated.id): "fulfilled",
        str(booked.id): "booked",
        str(cancelled.id): "cancelled",
    }
    assert appointments[str(cancelled.id)]["cancelationReason"] == {"text": "Patient travelling"}
    assert appointments[str(treated.id)]["participant"][2] == {
        "actor": {"display": "Room 1"},
        "status": "accepted",
    }
    assert appointments[str(booked.id)]["description"] == "Session 2 of the series"

    plans = {p["id"]: p for p in resources["CarePlan"]}
    assert (plans[str(series.id)]["status"], plans[str(series.id)]["intent"]) == ("active", "plan")
    assert "activity" not in plans[str(empty.id)]
    activities = plans[str(series.id)]["activity"]
    assert activities[0] == {
        "reference": {"reference": f"Appointment/{treated.id}"},
        "outcomeReference": [{"reference": f"Procedure/{record.id}"}],
    }
    aftercare = [a["detail"] for a in activities if "detail" in a]
    template = record.aftercare_plans.get().steps
    assert [d["description"] for d in aftercare] == [step["instruction"] for step in template]
    treated_on = timezone.localtime(record.performed_at, clinic.zone).date()
    assert (
        aftercare[0]["scheduledPeriod"]["start"]
        == (treated_on + timedelta(days=template[0]["day_offset"])).isoformat()
    )
    assert [a["reference"]["reference"] for a in activities if "reference" in a] == [
        f"Appointment/{treated.id}",
        f"Appointment/{booked.id}",
        f"Appointment/{cancelled.id}",
    ]
    assert resources["Practitioner"][0]["id"] == str(provider.id)


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.ADMIN, Role.FRONT_DESK, Role.PROVIDER, Role.AUDITOR])
def test_every_role_reading_patients_may_read_it_and_is_audited(api, make_user, clinic, role):
    user = make_user(role, clinic)
    patient = PatientFactory(clinic=clinic)
    response = api(user).get(url(patient.id))
    assert response.status_code == 200
    assert [e["resource"]["resourceType"] for e in response.json()["entry"]] == ["Patient"]
    event = AuditEvent.objects.get(action="fhir.patient_everything")
    assert (event.actor_id, event.patient_id, event.object_id, event.detail) == (
        user.id,
        patient.id,
        str(patient.id),
        {"resources": 1},
    )


@pytest.mark.django_db
def test_another_clinics_patient_is_404(api, auditor, other_clinic):
    for patient_id in (PatientFactory(clinic=other_clinic).id, uuid.uuid4()):
        response = api(auditor).get(url(patient_id))
        assert response.status_code == 404
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "not_found"
    assert api(auditor).get("/api/v1/fhir/Patient/not-a-uuid/$everything").status_code == 404
    assert not AuditEvent.objects.filter(action="fhir.patient_everything").exists()


@pytest.mark.django_db
def test_query_count_does_not_grow_with_the_record(
    api, auditor, clinic, programme, make_record, lot_a1
):
    patient = programme[0]
    client = api(auditor)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url(patient.id)).status_code == 200
    for day in range(1, 4):
        make_record(datetime(2025, 1, day, 12, tzinfo=UTC), lot=lot_a1, patient=patient)
    with CaptureQueriesContext(connection) as large:
        assert len(by_type(client.get(url(patient.id)).json())["Procedure"]) == 4
    assert len(large) == len(small)


@pytest.mark.django_db
def test_a_scanned_lots_device_carries_its_udi(api, auditor, programme, lot_a1):
    """Received by scanning the box: udiCarrier has the GTIN and the human-readable form."""
    patient = programme[0]
    lot_a1.udi_carrier = "(01)00812345000019(17)280300(10)LOT-A1"
    lot_a1.save(update_fields=["udi_carrier"])
    bundle = api(auditor).get(url(patient.id), HTTP_ACCEPT="application/fhir+json").json()
    Bundle.model_validate(bundle)
    (device,) = [
        entry["resource"]
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "Device"
        and entry["resource"]["id"] == str(lot_a1.id)
    ]
    get_fhir_model_class("Device").model_validate(device)
    assert device["udiCarrier"] == [
        {
            "deviceIdentifier": "00812345000019",
            "issuer": "http://hl7.org/fhir/NamingSystem/gs1-di",
            "jurisdiction": "http://hl7.org/fhir/NamingSystem/fda-udi",
            "carrierHRF": "(01)00812345000019(17)280300(10)LOT-A1",
            "entryType": "barcode",
        }
    ]
