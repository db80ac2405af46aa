"""Booking one session or a whole series, and moving a booked session: every rule a booked
time must meet (scheduling.checks), then the insert the exclusion constraints decide."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone
from psycopg.errors import DeadlockDetected

from clinic import audit
from clinic.errors import DomainError, InvalidInput, InvalidState, error_for_integrity_error
from clinic.models import Room, User
from patients import selectors as patient_selectors
from scheduling import availability, checks, rules, slots
from scheduling.errors import SessionNotPlaced
from scheduling.models import Series, Session
from scheduling.rules import SessionStatus
from scheduling.selectors import active_sessions_of_series
from scheduling.services.locks import lock_patient, lock_series
from scheduling.webhooks import outbox as webhooks
from scheduling.webhooks.rules import WebhookEventType as Event

# Tries of one insert after PostgreSQL aborted it to break a tie between two bookings.
DEADLOCK_RETRIES = 2


class _Keep:
    """Marks an optional argument left out: keep the current value."""


KEEP = _Keep()


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
    patient = lock_patient(series.patient_id)
    series = lock_series(series.pk, patient=patient)
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
    with transaction.atomic(), audit.batched():
        patient = lock_patient(series.patient_id)
        series = lock_series(series.pk, patient=patient)
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
        lock_patient(session.patient_id)
        session = Session.objects.select_for_update(no_key=True).get(pk=session.pk)
        series = lock_series(session.series_id)
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
