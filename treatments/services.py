"""Every write of the treatments app: tip lots, aftercare templates, treatment records, recalls.

Each service owns its transaction, checks the rules, and writes its audit event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from clinic import audit
from clinic.errors import DomainError, InvalidInput, InvalidState
from clinic.models import Clinic, Handpiece, User
from clinic.plain_sql import CompiledQuery
from patients import rules as patient_rules
from patients import selectors as patient_selectors
from patients.models import Patient
from scheduling import services as scheduling_services
from scheduling.errors import PatientNotEligible
from scheduling.models import Session
from scheduling.notifications import outbox
from scheduling.notifications.models import NotificationKind
from scheduling.rules import SessionStatus
from scheduling.services.locks import lock_patient, lock_series
from scheduling.webhooks import outbox as webhooks
from scheduling.webhooks.rules import WebhookEventType as Event
from treatments import point_of_care, rules, selectors
from treatments.errors import (
    DepthNotAllowed,
    SessionAlreadyRecorded,
    TipAlreadyUsed,
    TipLotExhausted,
    TipLotExpired,
    TipLotMismatch,
    TipLotQuarantined,
    TipLotRecalled,
    TipLotUnknown,
    lot_number_in_stock,
    template_name_taken,
)
from treatments.gs1 import Udi
from treatments.models import (
    AftercarePlan,
    AftercareTemplate,
    TipLot,
    TreatmentAmendment,
    TreatmentDepth,
    TreatmentRecord,
)


@transaction.atomic
def receive_tip_lot(
    *,
    actor: User,
    lot_number: str,
    expires_on: Any,
    quantity_received: int,
    gtin: str = "",
    udi_carrier: str = "",
) -> TipLot:
    """Record stock as it is: a lot already past its expiry is received and shows `expired`.

    `udi_carrier` is the human-readable UDI when the box was scanned (treatments.gs1)."""
    clinic_id = actor.clinic_uuid
    if TipLot.objects.filter(clinic_id=clinic_id, lot_number=lot_number).exists():
        raise lot_number_in_stock()
    lot = TipLot.objects.create(
        clinic_id=clinic_id,
        lot_number=lot_number,
        expires_on=expires_on,
        quantity_received=quantity_received,
        gtin=gtin,
        udi_carrier=udi_carrier,
        received_by=actor,
    )
    audit.record(
        actor=actor,
        action="tip_lot.receive",
        object_type="tip_lot",
        object_id=lot.id,
        detail={
            "lot_number": lot_number,
            "quantity": quantity_received,
            "scanned": bool(udi_carrier),
        },
    )
    return lot


def scanned_lot(clinic_id: UUID, udi: Udi) -> TipLot:
    """The clinic's lot of a scanned cartridge: its lot number names it (unique in a clinic),
    and its GTIN (if the lot has one) and expiry must be what the box says."""
    lot = TipLot.objects.filter(clinic_id=clinic_id, lot_number=udi.lot_number).first()
    if lot is None:
        raise TipLotUnknown()
    differences = rules.scan_mismatches(
        lot_gtin=lot.gtin,
        lot_expires_on=lot.expires_on,
        scanned_gtin=udi.gtin,
        scanned_expires_on=udi.expires_on,
    )
    if differences:
        raise TipLotMismatch(
            f"The scanned cartridge's {' and '.join(differences)} differ(s) from lot "
            f"{lot.lot_number}'s record."
        )
    return lot


def seed_default_aftercare_template(clinic: Clinic, admin: User | None = None) -> None:
    """A new clinic starts with domain.md's typical Skinfuse post-care, to edit as it likes."""
    if not AftercareTemplate.objects.filter(clinic=clinic).exists():
        AftercareTemplate.objects.create(
            clinic=clinic,
            name="Standard SkinPen aftercare",
            is_default=True,
            steps=[dict(step) for step in rules.DEFAULT_AFTERCARE_STEPS],
        )


@transaction.atomic
def create_aftercare_template(
    *, actor: User, name: str, steps: list[dict[str, Any]], is_default: bool = False
) -> AftercareTemplate:
    clinic_id = actor.clinic_uuid
    _lock_templates_of(clinic_id)
    if AftercareTemplate.objects.filter(clinic_id=clinic_id, name=name).exists():
        raise template_name_taken()
    if is_default:
        AftercareTemplate.objects.filter(clinic_id=clinic_id, is_default=True).update(
            is_default=False
        )
    template = AftercareTemplate.objects.create(
        clinic_id=clinic_id, name=name, steps=_ordered_steps(steps), is_default=is_default
    )
    audit.record(
        actor=actor,
        action="aftercare_template.create",
        object_type="aftercare_template",
        object_id=template.id,
    )
    return template


@transaction.atomic
def update_aftercare_template(
    *, actor: User, template: AftercareTemplate, changes: dict[str, Any]
) -> AftercareTemplate:
    _lock_templates_of(template.clinic_id)
    template = AftercareTemplate.objects.select_for_update().get(pk=template.pk)
    if changes.get("is_default") is False and template.is_default:
        raise InvalidInput(
            {"is_default": ["Make another template the default instead of unsetting this one."]}
        )
    if changes.get("is_default"):
        AftercareTemplate.objects.filter(clinic_id=template.clinic_id, is_default=True).exclude(
            pk=template.pk
        ).update(is_default=False)
    if "name" in changes and (
        AftercareTemplate.objects.filter(clinic_id=template.clinic_id, name=changes["name"])
        .exclude(pk=template.pk)
        .exists()
    ):
        raise template_name_taken()
    for field in ("name", "is_default"):
        if field in changes:
            setattr(template, field, changes[field])
    if "steps" in changes:
        template.steps = _ordered_steps(changes["steps"])
    template.save()
    audit.record(
        actor=actor,
        action="aftercare_template.update",
        object_type="aftercare_template",
        object_id=template.id,
        detail={"fields": sorted(changes)},
    )
    return template


def _lock_templates_of(clinic_id: UUID) -> None:
    """Template writes of one clinic go one at a time (the clinic row is the lock), so two
    "make this the default" requests cannot both clear the old default."""
    Clinic.objects.select_for_update(no_key=True).get(pk=clinic_id)


def _ordered_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "day_offset": int(step["day_offset"]),
            "product": step.get("product") or "",
            "instruction": step["instruction"],
        }
        for step in sorted(steps, key=lambda step: int(step["day_offset"]))
    ]


# --- Treatment records -------------------------------------------------------------------


def _check_depths(depths: list[tuple[str, Decimal]], override_reason: str) -> None:
    if not depths:
        raise InvalidInput({"depths": ["Record the depth of at least one treated area."]})
    errors = [f"{area}: {error}" for area, depth in depths if (error := rules.depth_error(depth))]
    areas = [area for area, _depth in depths]
    errors += [
        f"{area}: listed more than once." for area in sorted(set(areas)) if areas.count(area) > 1
    ]
    if errors:
        raise InvalidInput({"depths": errors})
    if rules.depths_needing_override([depth for _area, depth in depths]) and not (
        override_reason.strip()
    ):
        raise DepthNotAllowed()


def _take_one_cartridge(lot: TipLot) -> None:
    """One conditional UPDATE: PostgreSQL serialises concurrent takes on the lot's row and
    re-checks the condition for each, so stock never goes below zero however many race."""
    taken = TipLot.objects.filter(
        pk=lot.pk,
        recalled_at__isnull=True,
        quarantined_at__isnull=True,
        quantity_used__lt=F("quantity_received"),
    ).update(quantity_used=F("quantity_used") + 1)
    if not taken:
        lot.refresh_from_db(fields=["recalled_at", "quarantined_at", "quantity_used"])
        if lot.recalled_at:
            raise TipLotRecalled()
        if lot.quarantined_at:
            raise TipLotQuarantined()
        raise TipLotExhausted()


def _snapshot_aftercare(record: TreatmentRecord) -> AftercarePlan:
    template = selectors.default_aftercare_template(record.clinic_id)
    steps = template.steps if template else [dict(s) for s in rules.DEFAULT_AFTERCARE_STEPS]
    return AftercarePlan.objects.create(
        clinic_id=record.clinic_id,
        session_id=record.session_id,
        record=record,
        template=template,
        steps=steps,
    )


def record_treatment(
    *,
    actor: User,
    session: Session,
    depths: list[tuple[str, Decimal]],
    tip_lot: TipLot | None = None,
    tip_barcode: Udi | None = None,
    handpiece: Handpiece | None = None,
    notes: str = "",
    depth_override_reason: str = "",
    performed_at: datetime | None = None,
    acknowledged_warnings: Iterable[str] = (),
) -> TreatmentRecord:
    """Record what was done in a session; the session is completed, one cartridge is taken
    from the lot, and the clinic's aftercare plan is attached. All or nothing.

    The cartridge is `tip_lot`, or the scanned `tip_barcode` (its lot by lot number, GTIN and
    expiry; its serial, GS1 AI 21, stored and used once per clinic). Every refusal is audited
    (outcome denied), whatever rolls back around it."""
    try:
        return _record_treatment(
            actor=actor,
            session=session,
            depths=depths,
            tip_lot=tip_lot,
            tip_barcode=tip_barcode,
            handpiece=handpiece,
            notes=notes,
            depth_override_reason=depth_override_reason,
            performed_at=performed_at,
            acknowledged_warnings=point_of_care.acknowledged(acknowledged_warnings),
        )
    except DomainError as error:
        detail: dict[str, Any] = {
            member: error.extra[member]
            for member in ("reasons", "warnings", "consent_forms")
            if member in error.extra
        }
        audit.record_refusal(
            actor=actor,
            action="treatment.record",
            code=error.code,
            object_type="session",
            object_id=session.pk,
            patient_id=session.patient_id,
            detail=detail or None,
        )
        raise


# The session's row lock (the patient's and the series' are scheduling.services.locks'):
# compiled once.
_SESSION_IN_CHAIR = CompiledQuery(
    lambda *, pk: (
        Session.objects.select_for_update(of=("self",)).select_related("clinic").filter(pk=pk)
    ),
    locks=True,
)


@transaction.atomic
@audit.batched()
def _record_treatment(
    *,
    actor: User,
    session: Session,
    depths: list[tuple[str, Decimal]],
    tip_lot: TipLot | None,
    tip_barcode: Udi | None,
    handpiece: Handpiece | None,
    notes: str,
    depth_override_reason: str,
    performed_at: datetime | None,
    acknowledged_warnings: list[str],
) -> TreatmentRecord:
    # The one lock order (scheduling.services): patient, then the session, then the series.
    # The patient's row holds a new screening back until this treatment has committed; the
    # series' row makes treatments of one series go one at a time, so the interval between
    # actual treatment times is decided on committed ones.
    patient = lock_patient(session.patient_id)
    session = cast(Session, _SESSION_IN_CHAIR.get(pk=session.pk))
    session.patient = patient
    series = lock_series(session.series_id, patient=patient)
    clinic = session.clinic
    if selectors.session_has_record(session.pk):
        raise SessionAlreadyRecorded()
    # Asked up front (complete_session decides it again, atomically) so a session not in the
    # chair is told so before any eligibility or lot answer.
    if session.status != SessionStatus.CHECKED_IN:
        raise InvalidState(
            f"A {session.status} session cannot be treated: check the patient in first."
            if session.status == SessionStatus.BOOKED
            else f"A {session.status} session cannot be treated."
        )

    now = timezone.now()
    performed_at = performed_at or now
    if performed_at > now + rules.CLOCK_SKEW:
        raise InvalidInput({"performed_at": ["Must not be in the future."]})
    performed_on = clinic.local_date(performed_at)
    session_on = clinic.local_date(session.starts_at)
    if performed_on != session_on:
        raise InvalidInput(
            {"performed_at": [f"Must fall on the session's day ({session_on.isoformat()})."]}
        )
    _check_depths(depths, depth_override_reason)

    point_of_care.check_attestation(clinic, session)
    # Treatment always needs full eligibility, on the day it is done. The screening in force
    # is read once (the patient's row is locked: no new one can come in meanwhile) for both
    # the eligibility and the warnings.
    screening = patient_selectors.latest_screening(patient.pk)
    eligibility = patient_rules.eligibility_on(
        date_of_birth=patient.date_of_birth,
        screening=patient_selectors.screening_facts(screening),
        on=performed_on,
    )
    if not eligibility.eligible:
        raise PatientNotEligible(eligibility.reasons)
    point_of_care.check_interval(clinic, series, performed_on)
    point_of_care.check_warnings(screening, acknowledged_warnings)
    point_of_care.check_consents(clinic, patient.pk, series.indication)

    serial_number = None
    if tip_lot is None:
        if tip_barcode is None:
            raise InvalidInput({"tip_lot": ["Give the cartridge's tip_lot or its tip_barcode."]})
        tip_lot = scanned_lot(clinic.pk, tip_barcode)
        serial_number = tip_barcode.serial_number
    if tip_lot.recalled_at is not None:
        raise TipLotRecalled()
    if tip_lot.quarantined_at is not None:
        raise TipLotQuarantined()
    if tip_lot.expires_on < performed_on:
        raise TipLotExpired()
    if (
        serial_number is not None
        and TreatmentRecord.objects.filter(
            clinic_id=session.clinic_id, serial_number=serial_number
        ).exists()
    ):
        raise TipAlreadyUsed()
    _take_one_cartridge(tip_lot)

    record = TreatmentRecord.objects.create(
        clinic_id=session.clinic_id,
        session=session,
        patient_id=session.patient_id,
        provider=actor,
        tip_lot=tip_lot,
        lot_number=tip_lot.lot_number,
        lot_expires_on=tip_lot.expires_on,
        serial_number=serial_number,
        handpiece=handpiece,
        handpiece_serial=handpiece.serial_number if handpiece else "",
        performed_at=performed_at,
        notes=notes,
        depth_override_reason=depth_override_reason,
        acknowledged_warnings=acknowledged_warnings,
    )
    TreatmentDepth.objects.bulk_create(
        [TreatmentDepth(record=record, area=area, depth_mm=depth) for area, depth in depths]
    )
    _snapshot_aftercare(record)
    # The session's and the series' rows are locked here and the instances current.
    scheduling_services.complete_session(
        actor=actor, session=session, performed_at=performed_at, locked_series=series
    )
    audit.record(
        actor=actor,
        action="treatment.record",
        object_type="treatment_record",
        object_id=record.id,
        patient_id=session.patient_id,
        detail={
            "session": str(session.id),
            "lot_number": tip_lot.lot_number,
            # The audit chain makes the provider's acknowledgement tamper-evident.
            "acknowledged_warnings": acknowledged_warnings,
        },
    )
    webhooks.emit(
        Event.TREATMENT_RECORDED,
        clinic_id=session.clinic_id,
        subject_id=record.pk,
        session=session.pk,
        series=session.series_id,
        patient=session.patient_id,
        provider=actor.pk,
        tip_lot=tip_lot.pk,
    )
    return record


@transaction.atomic
def amend_treatment(
    *,
    actor: User,
    record: TreatmentRecord,
    reason: str,
    notes: str | None = None,
    depths: list[tuple[str, Decimal]] | None = None,
    depth_override_reason: str | None = None,
) -> TreatmentAmendment:
    """Correct a record without touching it: the amendment says who, when, why and what."""
    if not reason.strip():
        raise InvalidInput({"reason": ["Say why the record is corrected."]})
    changes: dict[str, Any] = {}
    if notes is not None:
        changes["notes"] = notes
    if depth_override_reason is not None:
        changes["depth_override_reason"] = depth_override_reason
    if depths is not None:
        override = (
            depth_override_reason
            if depth_override_reason is not None
            else selectors.current_values(record).depth_override_reason
        )
        _check_depths(depths, override)
        changes["depths"] = [{"area": area, "depth_mm": f"{depth:.2f}"} for area, depth in depths]
    if not changes:
        raise InvalidInput({"non_field_errors": ["Nothing to amend."]})
    amendment = TreatmentAmendment.objects.create(
        record=record, amended_by=actor, reason=reason, changes=changes
    )
    audit.record(
        actor=actor,
        action="treatment.amend",
        object_type="treatment_record",
        object_id=record.id,
        patient_id=record.patient_id,
        detail={"amendment": str(amendment.id), "fields": sorted(changes)},
    )
    webhooks.emit(
        Event.TREATMENT_AMENDED,
        clinic_id=record.clinic_id,
        subject_id=record.pk,
        amendment=amendment.pk,
        session=record.session_id,
        patient=record.patient_id,
    )
    return amendment


# --- Recall --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AffectedPatient:
    id: UUID
    first_name: str
    last_name: str
    email: str
    phone: str
    sessions: list[UUID]


@dataclass(frozen=True)
class Recall:
    lot_number: str
    recalled_at: datetime
    affected_sessions: int
    affected_patients: list[AffectedPatient]


@transaction.atomic
def recall_tip_lot(*, actor: User, lot: TipLot, reason: str) -> Recall:
    """Take a lot out of use at once and name every patient treated with it.

    Each affected patient gets one `lot_recall` notification (the outbox keeps it to one per
    patient and channel, whatever is retried)."""
    lot = TipLot.objects.select_for_update().get(pk=lot.pk)
    if lot.recalled_at is not None:
        raise InvalidState("The lot is already recalled.")
    if not reason.strip():
        raise InvalidInput({"reason": ["Say why the lot is recalled."]})
    lot.recalled_at = timezone.now()
    lot.recall_reason = reason
    lot.recalled_by = actor
    lot.save(update_fields=["recalled_at", "recall_reason", "recalled_by"])

    recall, patients = _recall_of(lot)
    for patient in patients:
        outbox.queue(kind=NotificationKind.LOT_RECALL, patient=patient, subject_key=f"lot:{lot.id}")
    audit.record(
        actor=actor,
        action="tip_lot.recall",
        object_type="tip_lot",
        object_id=lot.id,
        detail={
            "lot_number": lot.lot_number,
            "affected_sessions": recall.affected_sessions,
            "affected_patients": len(recall.affected_patients),
        },
    )
    webhooks.emit(Event.TIP_LOT_RECALLED, clinic_id=lot.clinic_id, subject_id=lot.pk)
    return recall


def recall_of(lot: TipLot) -> Recall:
    """A recalled lot's recall, as recall_tip_lot answered it (affected sessions as of now)."""
    return _recall_of(lot)[0]


def _recall_of(lot: TipLot) -> tuple[Recall, list[Patient]]:
    if lot.recalled_at is None:
        raise InvalidState("The lot is not recalled.")
    records = (
        TreatmentRecord.objects.filter(tip_lot=lot)
        .select_related("patient")
        .order_by("patient__last_name", "patient__first_name", "patient_id", "performed_at")
    )
    by_patient: dict[UUID, AffectedPatient] = {}
    patients: dict[UUID, Patient] = {}
    for record in records:
        patient = record.patient
        if patient.id not in by_patient:
            patients[patient.id] = patient
            by_patient[patient.id] = AffectedPatient(
                id=patient.id,
                first_name=patient.first_name,
                last_name=patient.last_name,
                email=patient.email,
                phone=patient.phone,
                sessions=[],
            )
        by_patient[patient.id].sessions.append(record.session_id)
    recall = Recall(
        lot_number=lot.lot_number,
        recalled_at=lot.recalled_at,
        affected_sessions=len(records),
        affected_patients=list(by_patient.values()),
    )
    return recall, list(patients.values())
