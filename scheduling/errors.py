"""The booking errors of the contract, and the database constraints that stand for them.

Services check overlaps first for a precise answer; under a race only PostgreSQL sees the
conflict, and the registration below makes its refusal answer with the very same error.
"""

from __future__ import annotations

from collections.abc import Sequence

from clinic.errors import Conflict, Unprocessable, register_constraint_error


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
    default_detail = "This indication is not cleared for the patient's skin type."


class PatientNotEligible(Unprocessable):
    code = "patient_not_eligible"
    default_detail = "The patient is not eligible for treatment on the session date."

    def __init__(self, reasons: Sequence[str], detail: str | None = None) -> None:
        super().__init__(detail, reasons=list(reasons))


register_constraint_error("scheduling_session_no_provider_overlap", ProviderUnavailable)
register_constraint_error("scheduling_session_no_room_overlap", RoomUnavailable)
register_constraint_error("scheduling_session_no_patient_overlap", PatientUnavailable)
