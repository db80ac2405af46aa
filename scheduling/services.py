"""Every write of series and sessions. Each owns its transaction and writes its audit event.

Concurrency is decided by PostgreSQL:
- Overlaps (same provider, room or patient) are refused by exclusion constraints. Services check
  first for a precise answer; when a concurrent booking wins the race anyway, the constraint's
  refusal is turned into the very same error.
- "Series full" and the interval rule are decided one booking at a time per series: booking and
  rescheduling lock the series row (FOR NO KEY UPDATE) before they look at its sessions.
- Booking locks the patient row too, as recording a screening and archiving do, so a new
  screening cannot slip between a booking's eligibility check and its commit (the session's
  flags would be stale) and an archived patient gets no new session.
- Status changes are conditional UPDATEs (WHERE status IN the allowed sources): of two racing
  transitions exactly one changes the row.
- Locks are always taken in one order, patient -> session rows (by id) -> series, the order the
  treatments app follows when it records a treatment (patient, session, series, then
  complete_session), so no two of these paths can deadlock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone
from psycopg.errors import DeadlockDetected

from clinic import audit
from clinic.errors import DomainError, InvalidInput, InvalidState, error_for_integrity_error
from clinic.models import Clinic, Room, User
from patients import rules as patient_rules
from patients import selectors as patient_selectors
from patients.models import Patient
from scheduling import availability, checks, rules, slots
from scheduling.errors import IndicationNotAllowed, PatientNotEligible, SessionNotPlaced
from scheduling.models import Series, Session
from scheduling.rules import OPEN_SESSION_STATUSES, SeriesStatus, SessionStatus
from scheduling.selectors import active_sessions_of_series
from scheduling.webhooks import outbox as webhooks
from scheduling.webhooks.rules import WebhookEventType as Event

# Tries of one insert after PostgreSQL aborted it to break a tie between two bookings.
DEADLOCK_RETRIES = 2


class _Keep:
    """Marks an optional argument left out: keep the current value."""


KEEP = _Keep()


# --- Series -----------------------------------------------------------------------------------


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
def cancel_series(*, actor: User, series: Series, reason: str = "") -> Series:
    """Cancel the series and its sessions still to come; past and finished ones stay as they are."""
    # Patient first: a booking for this series (which locks the patient too) either committed
    # before, and its session is cancelled here, or waits and then finds the series cancelled.
    _lock_patient(series.patient_id)
    now = timezone.now()
    cancelled = list(
        Session.objects.filter(series_id=series.pk, status__in=OPEN_SESSION_STATUSES)
        .filter(starts_at__gt=now)
        .select_for_update(no_key=True)
        .order_by("id")
    )
    ids = [session.pk for session in cancelled]
    series = Series.objects.select_for_update(no_key=True).get(pk=series.pk)
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


def _lock_patient(patient_id: UUID) -> Patient:
    return Patient.objects.select_for_update(no_key=True).get(pk=patient_id)


def _lock_series(series_id: UUID, *, patient: Patient | None = None) -> Series:
    """The series, locked, with its clinic (unlocked) and its patient (locked by the caller)."""
    series = (
        Series.objects.select_for_update(no_key=True, of=("self",))
        .select_related("clinic", "patient")
        .get(pk=series_id)
    )
    if patient is not None:
        series.patient = patient
    return series


# --- Booking ----------------------------------------------------------------------------------


def book_session(
    *,
    actor: User,
    series: Series,
    provider: User,
    starts_at: datetime,
    duration_minutes: int = rules.DEFAULT_DURATION_MINUTES,
    room: Room | None = None,
) -> Session:
    """One session, in one transaction with no savepoint of its own inside.

    The insert is not wrapped in a savepoint (`_save_checked`): when the exclusion constraint
    refuses it, or PostgreSQL aborts it to break a deadlock, the whole booking rolls back (to
    the savepoint of its own transaction when it runs inside another) and then the overlap
    check runs again, or the whole booking is tried again, as `_save_checked` does for the
    insert alone."""
    for attempt in range(1, DEADLOCK_RETRIES + 2):
        try:
            return _book_session(
                actor=actor,
                series=series,
                provider=provider,
                starts_at=starts_at,
                duration_minutes=duration_minutes,
                room=room,
            )
        except _InsertRefused as refused:
            # Rolled back: what refused the insert has committed by now, and is visible.
            error = _overlap_error(refused.session) or error_for_integrity_error(refused.error)
            if error is None:
                raise refused.error from None
            raise error from refused.error
        except _InsertDeadlocked as deadlocked:
            if attempt > DEADLOCK_RETRIES:
                raise deadlocked.error from None
    raise AssertionError("unreachable")  # pragma: no cover


class _InsertRefused(Exception):
    def __init__(self, session: Session, error: IntegrityError) -> None:
        self.session, self.error = session, error


class _InsertDeadlocked(Exception):
    def __init__(self, error: OperationalError) -> None:
        self.error = error


@transaction.atomic
def _book_session(
    *,
    actor: User,
    series: Series,
    provider: User,
    starts_at: datetime,
    duration_minutes: int,
    room: Room | None,
) -> Session:
    patient = _lock_patient(series.patient_id)
    series = _lock_series(series.pk, patient=patient)
    checks.lock_resources(provider.pk, room.pk if room else None, shared=True)
    session = Session(
        clinic=series.clinic,
        series=series,
        patient=series.patient,
        provider=provider,
        room=room,
        starts_at=starts_at,
        ends_at=_ends_at(starts_at, duration_minutes),
        status=SessionStatus.BOOKED,
        created_by=actor,
    )
    _check_booking(session, series, new=True)
    try:
        session.save(force_insert=True)
    except IntegrityError as exc:
        raise _InsertRefused(session, exc) from exc
    except OperationalError as exc:
        if isinstance(exc.__cause__, DeadlockDetected):
            raise _InsertDeadlocked(exc) from exc
        raise
    _booked(actor, session)
    return session


def _booked(actor: User, session: Session, **detail: str) -> None:
    """What every booked session leaves: its audit event and its webhook."""
    audit.record(
        actor=actor,
        action="session.book",
        object_type="session",
        object_id=session.id,
        patient_id=session.patient_id,
        detail={
            "series": str(session.series_id),
            "starts_at": session.starts_at.isoformat(),
            **detail,
        },
    )
    webhooks.emit_session(Event.SESSION_BOOKED, session)


def book_series(
    *,
    actor: User,
    series: Series,
    provider: User,
    first_starts_at: datetime,
    duration_minutes: int = rules.DEFAULT_DURATION_MINUTES,
    room: Room | None = None,
    window_days: int = 0,
) -> list[Session]:
    """Book the series' remaining sessions exactly as `plan_series` places them, all or none.

    Each session then passes the single booking's own check and save, in this one transaction,
    so every rule of single booking (and the exclusion constraints) holds for each of them. The
    sessions are inserted in time order: two such bookings racing for overlapping slots wait
    for each other in one direction only, so they cannot deadlock.
    """
    with transaction.atomic():
        patient = _lock_patient(series.patient_id)
        series = _lock_series(series.pk, patient=patient)
        checks.lock_resources(provider.pk, room.pk if room else None, shared=True)
        plan = availability.plan_series(
            series=series,
            provider=provider,
            room=room,
            first_starts_at=first_starts_at,
            duration_minutes=duration_minutes,
            window_days=window_days,
            now=timezone.now(),
        )
        sessions = []
        for planned in plan:
            session = Session(
                clinic=series.clinic,
                series=series,
                patient=patient,
                provider=provider,
                room=room,
                starts_at=planned.starts_at,
                ends_at=planned.ends_at,
                status=SessionStatus.BOOKED,
                created_by=actor,
            )
            try:
                _check_booking(session, series, new=True)
                _save_checked(session, force_insert=True)
            except DomainError as error:
                raise SessionNotPlaced(planned.number, error) from error
            _booked(actor, session, via="series.book")
            sessions.append(session)
    return sessions


def reschedule_session(
    *,
    actor: User,
    session: Session,
    starts_at: datetime,
    duration_minutes: int | None = None,
    provider: User | _Keep = KEEP,
    room: Room | _Keep | None = KEEP,
) -> Session:
    """Move a booked session (optionally to another provider or room), with every booking check."""
    with transaction.atomic():
        # Patient first (the one lock order): an archive racing this move comes strictly
        # before it (and the move is refused) or after it.
        _lock_patient(session.patient_id)
        session = Session.objects.select_for_update(no_key=True).get(pk=session.pk)
        series = _lock_series(session.series_id)
        if session.status not in rules.RESCHEDULABLE:
            raise InvalidState(f"A {session.status} session cannot be rescheduled.")
        old_starts_at = session.starts_at
        if duration_minutes is None:
            duration_minutes = session.duration_minutes
        session.starts_at = starts_at
        session.ends_at = _ends_at(starts_at, duration_minutes)
        # A confirmation (and a reschedule request: the flags are set anew) was for the old time.
        session.confirmed_at = None
        if not isinstance(provider, _Keep):
            session.provider = provider
        if not isinstance(room, _Keep):
            session.room = room
        checks.lock_resources(session.provider_id, session.room_id, shared=True)
        _check_booking(session, series, new=False)
        _save_checked(session)
        audit.record(
            actor=actor,
            action="session.reschedule",
            object_type="session",
            object_id=session.id,
            patient_id=session.patient_id,
            detail={"from": old_starts_at.isoformat(), "to": session.starts_at.isoformat()},
        )
        webhooks.emit_session(Event.SESSION_RESCHEDULED, session)
    return session


def _ends_at(starts_at: datetime, duration_minutes: int) -> datetime:
    errors = checks.duration_errors(duration_minutes)
    if errors:
        raise InvalidInput(errors)
    return starts_at + timedelta(minutes=duration_minutes)


def _check_booking(session: Session, series: Series, *, new: bool) -> None:
    """Every rule a booked time must meet (scheduling.checks, in the order of the answers).

    The slot comes before the series rules on purpose: a request for a taken time is told the
    time is taken, whichever series it was made for. Sets the session's flags.
    """
    errors = checks.booking_input_errors(
        series=series,
        provider=session.provider,
        room=session.room,
        starts_at=session.starts_at,
        now=timezone.now(),
    )
    if errors:
        raise InvalidInput(errors)
    checks.check_series_bookable(series)
    clinic = series.clinic
    others = active_sessions_of_series(series.id, exclude_id=None if new else session.id)
    error, flags = checks.placement_error(
        _slot_context(session),
        session.starts_at,
        session.ends_at,
        other_days=[clinic.local_date(at) for _id, at in others],
        min_interval_days=clinic.min_interval_days,
        reasons_on=lambda day: patient_selectors.eligibility_on(series.patient, day).reasons,
        full_at=series.planned_sessions if new else None,
    )
    if error is not None:
        raise error
    session.flags = flags
    if new:
        # Its place among the series' active sessions as the checks read them (what
        # scheduling.selectors.sessions_with_number counts), so the answer needs no read back:
        # the series' lock keeps other bookings and moves of the series out until this commits.
        session.number = 1 + sum(  # type: ignore[attr-defined]
            1
            for other_id, other_starts_at in others
            if (other_starts_at, other_id) < (session.starts_at, session.pk)
        )


def _slot_context(session: Session) -> slots.SlotContext:
    return checks.slot_context(
        zone=session.clinic.zone,
        provider_id=session.provider_id,
        room_id=session.room_id,
        patient_id=session.patient_id,
        start=session.starts_at,
        end=session.ends_at,
        exclude_session_id=None if session._state.adding else session.pk,
    )


def _overlap_error(session: Session) -> DomainError | None:
    """Which of provider, room and patient is not free at the session's time."""
    return checks.slot_error(
        slots.slot_conflict(_slot_context(session), session.starts_at, session.ends_at)
    )


def _save_checked(session: Session, **save_kwargs: Any) -> None:
    """Save, turning an exclusion-constraint refusal into the contract's error.

    The savepoint keeps the transaction usable after the refusal, so the overlap check can run
    again: by then the winning booking has committed and is visible, and the answer names the
    same resource the check would have named had it come first.

    Two transactions inserting overlapping sessions at the same instant can each find the
    other's index entry and wait for it; PostgreSQL breaks that tie by aborting one with
    `deadlock_detected`. Only this savepoint is lost, so the insert is tried again: the other
    booking no longer waits for us, we wait for it, and the exclusion constraint then answers.
    """
    for attempt in range(1, DEADLOCK_RETRIES + 2):
        try:
            with transaction.atomic():
                session.save(**save_kwargs)
            return
        except IntegrityError as exc:
            error = _overlap_error(session) or error_for_integrity_error(exc)
            if error is None:
                raise
            raise error from exc
        except OperationalError as exc:
            if not isinstance(exc.__cause__, DeadlockDetected) or attempt > DEADLOCK_RETRIES:
                raise


# --- Status changes ---------------------------------------------------------------------------


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
        series = locked_series if locked_series is not None else _lock_series(session.series_id)
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
