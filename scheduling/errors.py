"""The booking errors of the contract, and the database constraints that stand for them.

Services check overlaps first for a precise answer; under a race only PostgreSQL sees the
conflict, and the registration below makes its refusal answer with the very same error.
"""

from __future__ import annotations

from collections.abc import Sequence

from clinic.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    Unprocessable,
    register_constraint_error,
)
from scheduling.rules import NECK_NOT_ALLOWED


class ProviderUnavailable(Conflict):
    code = "provider_unavailable"
    default_detail = "The provider has another session at that time."


class RoomUnavailable(Conflict):
    code = "room_unavailable"
    default_detail = "The room is taken at that time."


class PatientUnavailable(Conflict):
    code = "patient_unavailable"
    default_detail = "The patient has another session at that time."


class SeriesFull(Conflict):
    code = "series_full"
    default_detail = "Every planned session of the series is already booked or done."


class IntervalTooShort(Unprocessable):
    code = "interval_too_short"
    default_detail = "Too close to another session of the series."


class IndicationNotAllowed(Unprocessable):
    code = "indication_not_allowed"
    default_detail = NECK_NOT_ALLOWED


class PatientNotEligible(Unprocessable):
    code = "patient_not_eligible"
    default_detail = "The patient is not eligible for treatment on the session date."

    def __init__(self, reasons: Sequence[str], detail: str | None = None) -> None:
        super().__init__(detail, reasons=list(reasons))


class SessionsConflict(Conflict):
    code = "sessions_conflict"
    default_detail = "The time off overlaps active sessions; move or cancel them first."

    def __init__(self, session_ids: Sequence[object]) -> None:
        super().__init__(None, sessions=[str(i) for i in session_ids])


class SessionNotPlaced(DomainError):
    """A session of a series' plan that cannot be placed: the session's own error (status,
    code, members), with `errors.sessions` naming its number."""

    def __init__(self, number: int, error: DomainError) -> None:
        self.status = error.status
        self.code = error.code
        self.title = error.title
        extra = dict(error.extra)
        errors = dict(extra.pop("errors", {}))
        errors["sessions"] = {str(number): [error.code]}
        super().__init__(f"Session {number}: {error.detail}", errors=errors, **extra)


def _overlapping_intervals() -> DomainError:
    return InvalidInput({"intervals": ["Intervals of the same weekday overlap."]})


register_constraint_error("scheduling_workinginterval_no_overlap", _overlapping_intervals)
register_constraint_error("scheduling_session_no_provider_overlap", ProviderUnavailable)
register_constraint_error("scheduling_session_no_room_overlap", RoomUnavailable)
register_constraint_error("scheduling_session_no_patient_overlap", PatientUnavailable)
