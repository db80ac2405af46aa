"""A session's status changes: check in, cancel, no-show, complete. Each is one conditional
UPDATE (`_transition`): of two racing changes exactly one finds the row in an allowed status."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from clinic import audit
from clinic.errors import DomainError, InvalidInput, InvalidState
from clinic.models import Clinic, User
from patients import rules as patient_rules
from scheduling import rules
from scheduling.errors import PatientNotEligible
from scheduling.models import Series, Session
from scheduling.rules import (
    ACTIVE_SESSION_STATUSES,
    OPEN_SESSION_STATUSES,
    SeriesStatus,
    SessionStatus,
)
from scheduling.services.locks import lock_series
from scheduling.webhooks import outbox as webhooks
from scheduling.webhooks.rules import WebhookEventType as Event


def check_in_session(
    *, actor: User, session: Session, attestation: Mapping[str, bool | None] | None = None
) -> Session:
    """The patient is here: allowed from the start of the session's local day.

    With the clinic's `day_of_attestation_required` on, the patient is asked again on the day
    about pregnancy, infection and open wounds (patients.rules.DAY_OF_ATTESTATION_ANSWERS), all
    three answered; any "yes" refuses (422 patient_not_eligible) and the session stays booked.
    A refusal is audited (outcome denied), whatever rolls back around it."""
    try:
        return _check_in(actor=actor, session=session, attestation=dict(attestation or {}))
    except DomainError as error:
        audit.record_refusal(
            actor=actor,
            action="session.check_in",
            code=error.code,
            object_type="session",
            object_id=session.pk,
            patient_id=session.patient_id,
            detail={"reasons": error.extra["reasons"]} if "reasons" in error.extra else None,
        )
        raise


@transaction.atomic
def _check_in(*, actor: User, session: Session, attestation: dict[str, bool | None]) -> Session:
    # The session's state first (a finished session is told so, whatever the body says), then
    # the answers' presence (400), then what they say (422).
    clinic = Clinic.objects.get(pk=session.clinic_id)
    status, starts_at = Session.objects.values_list("status", "starts_at").get(pk=session.pk)
    if not rules.can_transition(status, SessionStatus.CHECKED_IN):
        raise InvalidState(f"A {status} session cannot become {SessionStatus.CHECKED_IN}.")
    now = timezone.now()
    day_start, _end = clinic.day_bounds(clinic.local_date(starts_at))
    if not rules.check_in_open(day_start, now):
        raise InvalidState("Check-in opens on the session's day, from local midnight.")
    answers = {name: attestation.get(name) for name in patient_rules.DAY_OF_ATTESTATION_ANSWERS}
    missing = [name for name, answer in answers.items() if answer is None]
    if clinic.day_of_attestation_required and missing:
        raise InvalidInput(
            {name: ["Required: the clinic asks this again on the day."] for name in missing}
        )
    reasons = patient_rules.attestation_reasons(answers)
    if reasons:
        raise PatientNotEligible(
            reasons, "The patient's answers on the day rule treatment out today."
        )
    attested: dict[str, Any] = {}
    if not missing:
        attested = {
            "attested_at": now,
            "attested_by": actor,
            **{f"attested_{name}": answer for name, answer in answers.items()},
        }
    return _transition(
        actor=actor,
        session=session,
        target=SessionStatus.CHECKED_IN,
        action="session.check_in",
        event=Event.SESSION_CHECKED_IN,
        checked_in_at=now,
        **attested,
    )


def cancel_session(*, actor: User, session: Session, reason: str = "") -> Session:
    return _transition(
        actor=actor,
        session=session,
        target=SessionStatus.CANCELLED,
        action="session.cancel",
        event=Event.SESSION_CANCELLED,
        cancel_reason=reason,
        cancelled_at=timezone.now(),
    )


def mark_no_show(*, actor: User, session: Session) -> Session:
    return _transition(
        actor=actor,
        session=session,
        target=SessionStatus.NO_SHOW,
        action="session.no_show",
        event=Event.SESSION_NO_SHOW,
    )


def complete_session(
    *, actor: User, session: Session, performed_at: datetime, locked_series: Series | None = None
) -> Session:
    """Mark a session treated; the series completes with its last planned session.

    Called by the treatments app when a treatment is recorded (scheduling never imports
    treatments), inside its transaction, holding the session's and the series' row locks
    (`locked_series`, then current: neither is read again). Raises InvalidState unless the
    session is checked in.
    """
    # Inside the caller's transaction (locked_series) no savepoint: a refusal rolls back the
    # caller's whole transaction, which does not go on after it.
    inside = locked_series is not None
    with transaction.atomic(savepoint=not inside):
        session = _transition(
            actor=actor,
            session=session,
            target=SessionStatus.COMPLETED,
            action="session.complete",
            event=Event.SESSION_COMPLETED,
            locked=inside,
            completed_at=performed_at,
        )
        # Locked after the session (the one lock order): of two last sessions completed at
        # once, the second to get the lock counts after the first has committed.
        series = locked_series if locked_series is not None else lock_series(session.series_id)
        completed = Session.objects.filter(series=series, status=SessionStatus.COMPLETED).count()
        if series.status == SeriesStatus.ACTIVE and completed >= series.planned_sessions:
            series.status = SeriesStatus.COMPLETED
            series.completed_at = performed_at
            series.save(update_fields=["status", "completed_at", "updated_at"])
            audit.record(
                actor=actor,
                action="series.complete",
                object_type="series",
                object_id=series.id,
                patient_id=series.patient_id,
            )
            webhooks.emit(
                Event.SERIES_COMPLETED,
                clinic_id=series.clinic_id,
                subject_id=series.pk,
                patient=series.patient_id,
            )
    return session


def _transition(
    *,
    actor: User,
    session: Session,
    target: str,
    action: str,
    event: str,
    locked: bool = False,
    **changes: Any,
) -> Session:
    """Move a session to `target` if, and only if, its current status allows it.

    One conditional UPDATE decides: of two racing transitions, only one finds the row still
    in an allowed status. The session is read again afterwards, unless `locked`: the caller
    holds the row's lock and `session` is as it was read under it, so the UPDATE's changes are
    applied to it instead. `locked` also means the caller's transaction is around it (no
    savepoint of its own: a refusal rolls back the caller's).
    """
    with transaction.atomic(savepoint=not locked):
        now = timezone.now()
        if target not in OPEN_SESSION_STATUSES:
            changes["flags"] = []
        updated = Session.objects.filter(pk=session.pk, status__in=rules.sources_of(target)).update(
            status=target, updated_at=now, **changes
        )
        if not updated:
            current = Session.objects.filter(pk=session.pk).values_list("status", flat=True)
            raise InvalidState(f"A {current.first() or 'missing'} session cannot become {target}.")
        if target not in ACTIVE_SESSION_STATUSES:
            # It gives up its place in the series: the series' lock (after the session's row,
            # the one order) keeps it from slipping between a booking's count of the places
            # before its own and that booking's commit, so the booking answers the number its
            # session has when it commits (as if the two had run one after the other).
            lock_series(session.series_id)
        audit.record(
            actor=actor,
            action=action,
            object_type="session",
            object_id=session.pk,
            patient_id=session.patient_id,
        )
        if locked:
            session.status, session.updated_at = target, now
            for name, value in changes.items():
                setattr(session, name, value)
        else:
            session = Session.objects.get(pk=session.pk)
        webhooks.emit_session(event, session)
        return session
