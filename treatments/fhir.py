"""A patient's SkinPen programme as a FHIR R4 Bundle (`Patient/{id}/$everything`).

Mapping:
- Patient: name, birth date, telecom; `active` is false once archived.
- CarePlan, one per series: status (cancelled -> revoked), intent `plan`; one activity per
  session (reference to its Appointment, outcomeReference to its Procedure once treated), and
  one activity per aftercare step of each treatment (detail: instruction, product, the day).
- Appointment, one per session: booked / checked-in / fulfilled / cancelled / noshow.
- Procedure, one per treatment record: `performedDateTime`, performer, `basedOn` the CarePlan,
  `bodySite` and a note per treated area with its depth, `usedReference` to the cartridge lot's
  Device (`lotNumber`, `expirationDate`) and the handpiece's (`serialNumber`). Amended values
  are the current ones (the latest amendment's), with a note saying so.
- Consent, one per signed consent: status `active` (`inactive` once revoked), scope
  `treatment` (HL7's consentscope), the form's title and version with its body as the source
  attachment (and its sha256 in the title), the patient as performer (and verified with), the
  witness in the consent-Witness extension, the provision's period from the signature to the
  revocation.
- Practitioner for each provider and witness named.

Codes are text only: the domain has no coding system to cite and we do not invent codes. The
resources use nothing that differs between R4 (4.0.1) and R4B (4.3.0).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from django.utils import timezone

from clinic.models import Clinic, Handpiece, User
from patients.models import Patient
from scheduling.models import Series, Session, SessionStatus
from scheduling.selectors import sessions_with_number
from treatments.models import AftercarePlan, Consent, TipLot, TreatmentRecord
from treatments.selectors import current_values, treatment_records

FHIR_CONTENT_TYPE = "application/fhir+json"
PROCEDURE_TEXT = "SkinPen microneedling"
# FHIR's naming systems for a GS1 device identifier and the FDA's UDI system.
GS1_ISSUER = "http://hl7.org/fhir/NamingSystem/gs1-di"
FDA_UDI_JURISDICTION = "http://hl7.org/fhir/NamingSystem/fda-udi"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_WITNESS = "http://hl7.org/fhir/StructureDefinition/consent-Witness"

SERIES_STATUS = {"active": "active", "completed": "completed", "cancelled": "revoked"}
APPOINTMENT_STATUS = {
    SessionStatus.BOOKED: "booked",
    SessionStatus.CHECKED_IN: "checked-in",
    SessionStatus.COMPLETED: "fulfilled",
    SessionStatus.CANCELLED: "cancelled",
    SessionStatus.NO_SHOW: "noshow",
}


@dataclass(frozen=True)
class PatientRecords:
    """Everything of one patient the Bundle shows, read in a constant number of queries."""

    clinic: Clinic
    patient: Patient
    series: list[Series]
    sessions: list[Session]
    records: list[TreatmentRecord]
    aftercare: list[AftercarePlan]
    lots: dict[UUID, TipLot]
    handpieces: dict[UUID, Handpiece]
    consents: list[Consent]
    practitioners: dict[UUID, User]


def patient_records(clinic: Clinic, patient: Patient) -> PatientRecords:
    series = list(Series.objects.filter(clinic=clinic, patient=patient).order_by("created_at"))
    sessions = list(
        sessions_with_number(Session.objects.filter(clinic=clinic, patient=patient))
        .select_related("room")
        .order_by("starts_at", "id")
    )
    # Depths and amendments prefetched, amendments oldest first.
    records = list(
        treatment_records().filter(clinic=clinic, patient=patient).order_by("performed_at", "id")
    )
    aftercare = list(
        AftercarePlan.objects.filter(clinic=clinic, record__in=[r.id for r in records]).order_by(
            "created_at"
        )
    )
    consents = list(
        Consent.objects.filter(clinic=clinic, patient=patient)
        .select_related("consent_form")
        .order_by("signed_at", "id")
    )
    provider_ids = (
        {s.provider_id for s in sessions}
        | {r.provider_id for r in records}
        | {c.witnessed_by_id for c in consents}
    )
    return PatientRecords(
        clinic=clinic,
        patient=patient,
        series=series,
        sessions=sessions,
        records=records,
        aftercare=aftercare,
        lots=TipLot.objects.in_bulk({r.tip_lot_id for r in records}),
        handpieces=Handpiece.objects.in_bulk({r.handpiece_id for r in records if r.handpiece_id}),
        consents=consents,
        practitioners=User.objects.in_bulk(provider_ids),
    )


def _ref(resource_type: str, object_id: Any, display: str | None = None) -> dict[str, str]:
    """A relative reference; entries' fullUrls share one base, so it resolves in the Bundle."""
    reference = {"reference": f"{resource_type}/{object_id}"}
    if display:
        reference["display"] = display
    return reference


def _when(moment: datetime | None, clinic: Clinic) -> str | None:
    return clinic.localtime(moment).isoformat() if moment else None


def _patient(data: PatientRecords) -> dict[str, Any]:
    patient = data.patient
    telecom = [
        {"system": system, "value": value, "use": use}
        for system, value, use in (
            ("email", patient.email, "home"),
            ("phone", patient.phone, "mobile"),
        )
        if value
    ]
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(patient.id),
        "active": patient.archived_at is None,
        "name": [{"use": "official", "family": patient.last_name, "given": [patient.first_name]}],
        "birthDate": patient.date_of_birth.isoformat(),
        "managingOrganization": {"display": data.clinic.name},
    }
    if telecom:
        resource["telecom"] = telecom
    return resource


def _practitioner(user: User) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "id": str(user.id),
        "active": user.is_active,
        "name": [{"text": user.full_name or user.username}],
    }


def _procedure(record: TreatmentRecord, series_id: UUID, data: PatientRecords) -> dict[str, Any]:
    current = current_values(record)
    depths = [(area, f"{depth:.2f}") for area, depth in current.depths]
    notes, override = current.notes, current.depth_override_reason
    provider = data.practitioners.get(record.provider_id)
    used = [_ref("Device", record.tip_lot_id, f"Cartridge lot {record.lot_number}")]
    if record.handpiece_id:
        used.append(_ref("Device", record.handpiece_id, f"Handpiece {record.handpiece_serial}"))
    note: list[dict[str, Any]] = [
        {"text": f"Needle depth, {area}: {depth} mm"} for area, depth in depths
    ]
    if override:
        note.append({"text": f"Depth above 1.5 mm, reason: {override}"})
    if record.acknowledged_warnings:
        note.append({"text": f"Warnings acknowledged: {', '.join(record.acknowledged_warnings)}"})
    if notes:
        note.append({"text": notes})
    amendments = list(record.amendments.all())
    if amendments:
        note.append(
            {
                "text": f"Amended {len(amendments)} time(s); latest reason: "
                f"{amendments[-1].reason}",
                "time": _when(amendments[-1].amended_at, data.clinic),
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": str(record.id),
        "status": "completed",
        "code": {"text": PROCEDURE_TEXT},
        "subject": _ref("Patient", record.patient_id),
        "basedOn": [_ref("CarePlan", series_id)],
        "performedDateTime": _when(record.performed_at, data.clinic),
        "recorder": _ref("Practitioner", record.provider_id),
        "performer": [
            {"actor": _ref("Practitioner", record.provider_id, str(provider) if provider else None)}
        ],
        "usedReference": used,
        "note": note,
    }
    if depths:
        resource["bodySite"] = [{"text": area} for area, _depth in depths]
    return resource


def _lot_device(lot: TipLot, today: date) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Device",
        "id": str(lot.id),
        "status": "inactive" if lot.recalled_at or lot.expires_on < today else "active",
        "deviceName": [{"name": "SkinPen needle cartridge", "type": "user-friendly-name"}],
        "lotNumber": lot.lot_number,
        "expirationDate": lot.expires_on.isoformat(),
    }
    if lot.gtin:
        carrier: dict[str, Any] = {"deviceIdentifier": lot.gtin}
        if lot.udi_carrier:
            # Received by scanning the box: the UDI as GS1 (the issuing agency) prints it.
            carrier.update(
                issuer=GS1_ISSUER, jurisdiction=FDA_UDI_JURISDICTION, carrierHRF=lot.udi_carrier
            )
            carrier["entryType"] = "barcode"
        resource["udiCarrier"] = [carrier]
    return resource


def _handpiece_device(handpiece: Handpiece) -> dict[str, Any]:
    return {
        "resourceType": "Device",
        "id": str(handpiece.id),
        "status": "active" if handpiece.is_active else "inactive",
        "deviceName": [{"name": "SkinPen handpiece", "type": "user-friendly-name"}],
        "serialNumber": handpiece.serial_number,
    }


def _appointment(session: Session, data: PatientRecords) -> dict[str, Any]:
    provider = data.practitioners.get(session.provider_id)
    participants = [
        {"actor": _ref("Patient", session.patient_id), "status": "accepted"},
        {
            "actor": _ref("Practitioner", session.provider_id, str(provider) if provider else None),
            "status": "accepted",
        },
    ]
    if session.room is not None:
        participants.append({"actor": {"display": session.room.name}, "status": "accepted"})
    number = getattr(session, "number", None)
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": str(session.id),
        "status": APPOINTMENT_STATUS[SessionStatus(session.status)],
        "serviceType": [{"text": PROCEDURE_TEXT}],
        "description": f"Session {number} of the series" if number else "Session of the series",
        "start": _when(session.starts_at, data.clinic),
        "end": _when(session.ends_at, data.clinic),
        "minutesDuration": session.duration_minutes,
        "created": _when(session.created_at, data.clinic),
        "participant": participants,
    }
    if session.status == SessionStatus.CANCELLED and session.cancel_reason:
        resource["cancelationReason"] = {"text": session.cancel_reason}
    return resource


def _aftercare_activities(
    plan: AftercarePlan, record: TreatmentRecord, clinic: Clinic, today: date
) -> Iterable[dict[str, Any]]:
    treated_on = clinic.local_date(record.performed_at)
    for step in plan.steps:
        day = treated_on + timedelta(days=int(step["day_offset"]))
        detail: dict[str, Any] = {
            "code": {"text": f"Aftercare, day {step['day_offset']} after treatment"},
            "status": "scheduled" if day >= today else "unknown",
            "scheduledPeriod": {"start": day.isoformat(), "end": day.isoformat()},
            "description": step["instruction"],
        }
        if step.get("product"):
            detail["productCodeableConcept"] = {"text": step["product"]}
        yield {"detail": detail}


def _care_plan(series: Series, data: PatientRecords, today: date) -> dict[str, Any]:
    records = {r.session_id: r for r in data.records}
    plans = {p.record_id: p for p in data.aftercare}
    activities: list[dict[str, Any]] = []
    for session in (s for s in data.sessions if s.series_id == series.id):
        activity: dict[str, Any] = {"reference": _ref("Appointment", session.id)}
        record = records.get(session.id)
        if record is not None:
            activity["outcomeReference"] = [_ref("Procedure", record.id)]
        activities.append(activity)
        plan = plans.get(record.id) if record is not None else None
        if record is not None and plan is not None:
            activities.extend(_aftercare_activities(plan, record, data.clinic, today))
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": str(series.id),
        "status": SERIES_STATUS[series.status],
        "intent": "plan",
        "title": f"{PROCEDURE_TEXT}: {series.get_indication_display().lower()}",
        "description": (
            f"{series.planned_sessions} sessions, {series.interval_days} days apart, "
            "each with its aftercare."
        ),
        "subject": _ref("Patient", series.patient_id),
        "created": _when(series.created_at, data.clinic),
        "category": [{"text": "Aesthetic treatment series"}],
    }
    if activities:
        resource["activity"] = activities
    return resource


def _consent(consent: Consent, data: PatientRecords) -> dict[str, Any]:
    form = consent.consent_form
    signed = _when(consent.signed_at, data.clinic)
    period: dict[str, Any] = {"start": signed}
    if consent.revoked_at is not None:
        period["end"] = _when(consent.revoked_at, data.clinic)
    witness = data.practitioners.get(consent.witnessed_by_id)
    return {
        "resourceType": "Consent",
        "id": str(consent.id),
        "status": "active" if consent.revoked_at is None else "inactive",
        "scope": {
            "coding": [{"system": CONSENT_SCOPE, "code": "treatment", "display": "Treatment"}],
            "text": "Treatment",
        },
        "category": [{"text": form.title}],
        "patient": _ref("Patient", consent.patient_id),
        "dateTime": signed,
        "performer": [_ref("Patient", consent.patient_id, consent.signature_name)],
        "sourceAttachment": {
            "contentType": "text/plain; charset=utf-8",
            "data": base64.b64encode(form.body.encode("utf-8")).decode("ascii"),
            "title": f"{form.title}, version {form.version} (sha256 {form.sha256})",
            "creation": _when(form.created_at, data.clinic),
        },
        "policyRule": {"text": f"{data.clinic.name}: {form.title}, version {form.version}"},
        # The staff member who witnessed the signature (R4's core consent-Witness extension).
        "extension": [
            {
                "url": CONSENT_WITNESS,
                "valueReference": _ref(
                    "Practitioner", consent.witnessed_by_id, str(witness) if witness else None
                ),
            }
        ],
        "verification": [
            {
                "verified": True,
                "verifiedWith": _ref("Patient", consent.patient_id),
                "verificationDate": signed,
            }
        ],
        "provision": {"type": "permit", "period": period},
    }


def everything_bundle(data: PatientRecords, base_url: str, self_url: str) -> dict[str, Any]:
    """The searchset Bundle; `base_url` ends with "/" and prefixes each entry's fullUrl."""
    today = data.clinic.today()
    series_of_session = {s.id: s.series_id for s in data.sessions}
    resources: list[dict[str, Any]] = [_patient(data)]
    resources += [_care_plan(series, data, today) for series in data.series]
    resources += [_appointment(session, data) for session in data.sessions]
    resources += [
        _procedure(record, series_of_session[record.session_id], data) for record in data.records
    ]
    resources += [_lot_device(lot, today) for lot in data.lots.values()]
    resources += [_handpiece_device(handpiece) for handpiece in data.handpieces.values()]
    resources += [_consent(consent, data) for consent in data.consents]
    resources += [_practitioner(user) for user in data.practitioners.values()]
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": timezone.now().isoformat(),
        "total": len(resources),
        "link": [{"relation": "self", "url": self_url}],
        "entry": [
            {
                "fullUrl": f"{base_url}{resource['resourceType']}/{resource['id']}",
                "resource": resource,
                "search": {"mode": "match"},
            }
            for resource in resources
        ],
    }
