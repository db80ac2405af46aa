"""Replies to our texts: matched to patients by phone, acted on once per message id.

`C`/`YES` confirms the earliest upcoming booked session of the patients with that phone
(`Session.confirmed_at`), `R` flags it `reschedule_requested` (it shows with `?flagged=true`
until the session is moved or closed), `STOP` opts them out of SMS; anything else is only kept
for the front desk. A phone shared by patients of several clinics is recorded (and acted on) in
each clinic; a phone nobody has is kept with no clinic, for the back office.

Once per message id: the whole handling runs in one transaction under an advisory lock on the
provider's message id, which first looks for an earlier row with that id; the unique
constraints on (message_id, clinic) refuse a second row outright.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from clinic import audit
from clinic.errors import InvalidInput
from patients.models import Patient
from patients.services import normalise_phone
from scheduling import rules
from scheduling.channels import INBOUND_BODY_MAX_LENGTH, InboundSMS
from scheduling.models import Session
from scheduling.notifications.models import InboundMessage
from scheduling.rules import InboundAction, SessionFlag, SessionStatus

logger = logging.getLogger(__name__)

ACTOR_LABEL = "inbound_sms"


def normalised_sender(sender: str) -> str | None:
    """The sender as patients' phones are stored (E.164), or None if it is not a number."""
    try:
        return normalise_phone(sender) or None
    except InvalidInput:
        return None


def receive(sms: InboundSMS) -> list[InboundMessage]:
    """Record and act on one reply; the rows written (none when the id was seen before)."""
    phone = normalised_sender(sms.sender)
    wanted = rules.reply_action(sms.body)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                [f"inbound_sms:{sms.message_id}"],
            )
        if InboundMessage.objects.filter(message_id=sms.message_id).exists():
            logger.info("inbound SMS %s seen before; nothing done", sms.message_id)
            return []
        # Patients first, then their sessions: the one lock order (scheduling.services).
        patients = (
            list(Patient.objects.select_for_update(no_key=True).filter(phone=phone).order_by("id"))
            if phone
            else []
        )
        by_clinic: dict[UUID, list[Patient]] = defaultdict(list)
        for patient in patients:
            by_clinic[patient.clinic_id].append(patient)
        now = timezone.now()
        common = {
            "message_id": sms.message_id,
            "sender": phone or sms.sender.strip()[:32],
            "body": sms.body[:INBOUND_BODY_MAX_LENGTH],
            "received_at": now,
        }
        rows = [
            _act(clinic_id, group, wanted, now, common) for clinic_id, group in by_clinic.items()
        ] or [InboundMessage(clinic=None, action=InboundAction.NONE, **common)]
        InboundMessage.objects.bulk_create(rows)
    return rows


def _act(
    clinic_id: UUID, patients: list[Patient], wanted: str, now: datetime, common: dict[str, Any]
) -> InboundMessage:
    """One clinic's row, after doing what the reply asks for that clinic's patients."""
    patient_ids = [patient.pk for patient in patients]
    only = patients[0] if len(patients) == 1 else None
    if wanted == InboundAction.OPTED_OUT:
        Patient.objects.filter(pk__in=patient_ids).update(sms_opt_in=False, updated_at=now)
        for patient in patients:
            _audit(clinic_id, "patient.sms_opt_out", "patient", patient.pk, patient.pk)
        return InboundMessage(
            clinic_id=clinic_id, patient=only, action=InboundAction.OPTED_OUT, **common
        )
    if wanted in (InboundAction.CONFIRMED, InboundAction.RESCHEDULE_REQUESTED):
        session = (
            Session.objects.select_for_update(no_key=True, of=("self",))
            .filter(patient_id__in=patient_ids, status=SessionStatus.BOOKED, starts_at__gt=now)
            .order_by("starts_at", "id")
            .first()
        )
        if session is not None:
            if wanted == InboundAction.CONFIRMED:
                session.confirmed_at = now
                verb = "session.confirm"
            else:
                if SessionFlag.RESCHEDULE_REQUESTED not in session.flags:
                    session.flags = [*session.flags, SessionFlag.RESCHEDULE_REQUESTED]
                verb = "session.reschedule_request"
            session.updated_at = now
            session.save(update_fields=["confirmed_at", "flags", "updated_at"])
            _audit(clinic_id, verb, "session", session.pk, session.patient_id)
            return InboundMessage(
                clinic_id=clinic_id,
                patient_id=session.patient_id,
                session=session,
                action=wanted,
                **common,
            )
    return InboundMessage(clinic_id=clinic_id, patient=only, action=InboundAction.NONE, **common)


def _audit(
    clinic_id: UUID, action: str, object_type: str, object_id: UUID, patient_id: UUID
) -> None:
    audit.record(
        actor=None,
        actor_label=ACTOR_LABEL,
        clinic_id=clinic_id,
        action=action,
        object_type=object_type,
        object_id=object_id,
        patient_id=patient_id,
    )
