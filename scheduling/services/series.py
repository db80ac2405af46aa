"""Creating and cancelling a series."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from clinic import audit
from clinic.errors import InvalidInput, InvalidState
from clinic.models import User
from patients.models import Patient
from scheduling import rules
from scheduling.errors import IndicationNotAllowed
from scheduling.models import Series, Session
from scheduling.rules import OPEN_SESSION_STATUSES, SeriesStatus, SessionStatus
from scheduling.services.locks import lock_patient, lock_series
from scheduling.webhooks import outbox as webhooks
from scheduling.webhooks.rules import WebhookEventType as Event


@transaction.atomic
def create_series(
    *,
    actor: User,
    patient: Patient,
    indication: str,
    planned_sessions: int,
    interval_days: int | None = None,
) -> Series:
    # Locked so that an archive running at the same time comes strictly before or after.
    patient = (
        Patient.objects.select_for_update(no_key=True, of=("self",))
        .select_related("clinic")
        .get(pk=patient.pk)
    )
    clinic = patient.clinic
    if interval_days is None:
        interval_days = clinic.default_interval_days
    errors: dict[str, list[str]] = {}
    if not rules.MIN_PLANNED_SESSIONS <= planned_sessions <= rules.MAX_PLANNED_SESSIONS:
        errors["planned_sessions"] = [
            f"Must be {rules.MIN_PLANNED_SESSIONS} to {rules.MAX_PLANNED_SESSIONS}."
        ]
    if not clinic.min_interval_days <= interval_days <= rules.MAX_INTERVAL_DAYS:
        errors["interval_days"] = [
            f"Must be from the clinic's minimum interval ({clinic.min_interval_days} days) "
            f"to {rules.MAX_INTERVAL_DAYS} days."
        ]
    if errors:
        raise InvalidInput(errors)
    if patient.is_archived:
        raise InvalidState("The patient is archived.")
    if not rules.indication_allowed(indication, patient.fitzpatrick_type):
        raise IndicationNotAllowed()
    series = Series.objects.create(
        clinic=clinic,
        patient=patient,
        indication=indication,
        planned_sessions=planned_sessions,
        interval_days=interval_days,
        created_by=actor,
    )
    audit.record(
        actor=actor,
        action="series.create",
        object_type="series",
        object_id=series.id,
        patient_id=patient.id,
    )
    return series


@transaction.atomic
@audit.batched()
def cancel_series(*, actor: User, series: Series, reason: str = "") -> Series:
    """Cancel the series and its sessions still to come; past and finished ones stay as they are."""
    # Patient first: a booking for this series (which locks the patient too) either committed
    # before, and its session is cancelled here, or waits and then finds the series cancelled.
    lock_patient(series.patient_id)
    now = timezone.now()
    cancelled = list(
        Session.objects.filter(series_id=series.pk, status__in=OPEN_SESSION_STATUSES)
        .filter(starts_at__gt=now)
        .select_for_update(no_key=True)
        .order_by("id")
    )
    ids = [session.pk for session in cancelled]
    series = lock_series(series.pk)
    if series.status != SeriesStatus.ACTIVE:
        raise InvalidState(f"The series is {series.status}.")
    Session.objects.filter(pk__in=ids).update(
        status=SessionStatus.CANCELLED,
        cancel_reason=reason or "Series cancelled.",
        cancelled_at=now,
        flags=[],
        updated_at=now,
    )
    series.status = SeriesStatus.CANCELLED
    series.cancelled_at = now
    series.save(update_fields=["status", "cancelled_at", "updated_at"])
    for session_id in ids:
        audit.record(
            actor=actor,
            action="session.cancel",
            object_type="session",
            object_id=session_id,
            patient_id=series.patient_id,
            detail={"via": "series.cancel"},
        )
    for session in cancelled:
        webhooks.emit_session(Event.SESSION_CANCELLED, session)
    audit.record(
        actor=actor,
        action="series.cancel",
        object_type="series",
        object_id=series.id,
        patient_id=series.patient_id,
        detail={"sessions_cancelled": len(ids)},
    )
    return series
