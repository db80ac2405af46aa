"""Writing the audit trail (HIPAA 164.312(b)). Services call `record` inside their transaction;
views call `record_reads` for reads of patient data."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.utils import timezone
from django_guid import get_guid

from clinic.models import REQUEST_ID_MAX_LENGTH, AuditEvent, AuditOutcome, User


def _event(
    *,
    actor: User | None,
    action: str,
    clinic_id: UUID | None,
    object_type: str = "",
    object_id: Any = "",
    patient_id: UUID | None = None,
    outcome: str = AuditOutcome.SUCCESS,
    actor_label: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent(
        clinic_id=clinic_id if clinic_id is not None else (actor.clinic_id if actor else None),
        at=timezone.now(),
        actor=actor,
        actor_label=actor_label or (actor.username if actor else "system"),
        action=action,
        object_type=object_type,
        object_id=str(object_id or ""),
        patient_id=patient_id,
        # The id is client-supplied (X-Request-ID, any length); the column holds 64 characters.
        request_id=(get_guid() or "")[:REQUEST_ID_MAX_LENGTH],
        outcome=outcome,
        detail=detail or {},
    )


def record(
    *,
    actor: User | None,
    action: str,
    clinic_id: UUID | None = None,
    object_type: str = "",
    object_id: Any = "",
    patient_id: UUID | None = None,
    outcome: str = AuditOutcome.SUCCESS,
    actor_label: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    event = _event(
        actor=actor,
        action=action,
        clinic_id=clinic_id,
        object_type=object_type,
        object_id=object_id,
        patient_id=patient_id,
        outcome=outcome,
        actor_label=actor_label,
        detail=detail,
    )
    event.save(force_insert=True)
    return event


def record_reads(
    *, actor: User, action: str, object_type: str, objects: Iterable[tuple[Any, UUID | None]]
) -> None:
    """One event per patient-data object read, written in one query whatever the page size.

    `objects` yields (object_id, patient_id) pairs.
    """
    AuditEvent.objects.bulk_create(
        [
            _event(
                actor=actor,
                action=action,
                clinic_id=actor.clinic_id,
                object_type=object_type,
                object_id=object_id,
                patient_id=patient_id,
            )
            for object_id, patient_id in objects
        ]
    )
