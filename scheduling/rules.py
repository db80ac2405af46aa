"""Series and booking rules: pure functions of plain values (no ORM, no clock).

Sources (../shared/domain.md): the SkinPen neck-wrinkle clearance (K202243) is for Fitzpatrick
II-IV only; a series is 3-6 sessions; spacing and durations are clinic practice, so the minimum
interval is a per-clinic setting passed in here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta

from django.db.models import TextChoices

from clinic.rules import MAX_INTERVAL_DAYS as MAX_INTERVAL_DAYS
from patients.rules import SCREENING_EXPIRED

MIN_PLANNED_SESSIONS = 3
MAX_PLANNED_SESSIONS = 6
MIN_DURATION_MINUTES = 15
MAX_DURATION_MINUTES = 240
MIN_INTERVAL_DAYS = 1
DEFAULT_DURATION_MINUTES = 60
CANCEL_REASON_MAX_LENGTH = 500


class Indication(TextChoices):
    ACNE_SCARS = "acne_scars", "Acne scars"
    FINE_LINES_WRINKLES = "fine_lines_wrinkles", "Fine lines and wrinkles"
    NECK_WRINKLES = "neck_wrinkles", "Neck wrinkles"


NECK_FITZPATRICK_TYPES = frozenset({2, 3, 4})
NECK_NOT_ALLOWED = "Neck wrinkles are cleared for Fitzpatrick types II to IV only."


class SeriesStatus(TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


class SessionStatus(TextChoices):
    BOOKED = "booked", "Booked"
    CHECKED_IN = "checked_in", "Checked in"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"
    NO_SHOW = "no_show", "No show"


class SessionFlag(TextChoices):
    SCREENING_EXPIRED = "screening_expired", "Screening will have expired"
    NOT_ELIGIBLE = "not_eligible", "Not eligible on the session date"
    # The patient replied R to a text: set by scheduling.notifications.inbound, kept by the
    # eligibility refresh, cleared when the session is moved (or closed).
    RESCHEDULE_REQUESTED = "reschedule_requested", "The patient asked to reschedule"


# Flags that are not eligibility's: a refresh of the eligibility flags keeps them as they are.
REQUEST_FLAGS = (SessionFlag.RESCHEDULE_REQUESTED,)


class InboundAction(TextChoices):
    """What a patient's SMS reply did."""

    CONFIRMED = "confirmed", "Confirmed the next session"
    RESCHEDULE_REQUESTED = "reschedule_requested", "Asked to reschedule the next session"
    OPTED_OUT = "opted_out", "Opted out of SMS"
    NONE = "none", "Nothing (kept for the front desk)"


# A reply is one of these words, in any case, with any surrounding spaces.
REPLY_KEYWORDS = {
    "C": InboundAction.CONFIRMED,
    "YES": InboundAction.CONFIRMED,
    "R": InboundAction.RESCHEDULE_REQUESTED,
    "STOP": InboundAction.OPTED_OUT,
}
REPLY_INSTRUCTIONS = "Reply C to confirm, R to reschedule, STOP to opt out."


def reply_action(body: str) -> str:
    """What a reply asks for: `C`/`YES`, `R`, `STOP` (any case, spaces around), else none."""
    return REPLY_KEYWORDS.get(body.strip().upper(), InboundAction.NONE)


# Sessions that hold their time and their place in the series.
ACTIVE_SESSION_STATUSES = (
    SessionStatus.BOOKED,
    SessionStatus.CHECKED_IN,
    SessionStatus.COMPLETED,
)
# Sessions still to happen: the only ones that carry flags.
OPEN_SESSION_STATUSES = (SessionStatus.BOOKED, SessionStatus.CHECKED_IN)

# The whole state machine. Anything not listed is refused (409 invalid_state).
TRANSITIONS: Mapping[str, frozenset[str]] = {
    # Treatment happens in the chair: only a checked-in session is completed (v1 clarified).
    SessionStatus.BOOKED: frozenset(
        {SessionStatus.CHECKED_IN, SessionStatus.CANCELLED, SessionStatus.NO_SHOW}
    ),
    SessionStatus.CHECKED_IN: frozenset(
        {SessionStatus.COMPLETED, SessionStatus.CANCELLED, SessionStatus.NO_SHOW}
    ),
    SessionStatus.COMPLETED: frozenset(),
    SessionStatus.CANCELLED: frozenset(),
    SessionStatus.NO_SHOW: frozenset(),
}
# Only a booked session is moved: once the patient has checked in, the visit is under way.
RESCHEDULABLE = frozenset({SessionStatus.BOOKED})


def check_in_open(session_day_start: datetime, now: datetime) -> bool:
    """Check-in is allowed from the start of the session's local day (the patient is in the
    clinic on the day), never before."""
    return now >= session_day_start


def indication_allowed(indication: str, fitzpatrick_type: int) -> bool:
    """Neck wrinkles are cleared for Fitzpatrick II-IV only; the face for every type."""
    return indication != Indication.NECK_WRINKLES or fitzpatrick_type in NECK_FITZPATRICK_TYPES


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def sources_of(target: str) -> frozenset[str]:
    """The statuses a session may move to `target` from: the WHERE of a conditional UPDATE."""
    return frozenset(source for source, targets in TRANSITIONS.items() if target in targets)


def too_close(day: date, other_days: Iterable[date], min_interval_days: int) -> list[date]:
    """The other sessions' days less than `min_interval_days` before or after `day`."""
    return sorted(d for d in other_days if abs((day - d).days) < min_interval_days)


def booking_decision(reasons: Sequence[str]) -> tuple[tuple[str, ...], list[str]]:
    """(blocking reasons, flags) for a booking, given the eligibility reasons on its date.

    A series is booked ahead, so a session after the screening's validity is booked anyway and
    flagged for a re-screen; every other reason (including no screening at all) blocks.
    """
    if tuple(reasons) == (SCREENING_EXPIRED,):
        return (), [SessionFlag.SCREENING_EXPIRED]
    return tuple(reasons), []


def session_flags(reasons: Sequence[str], current: Sequence[str] = ()) -> list[str]:
    """The flags an open session carries, given the eligibility reasons on its date; the
    request flags it has now (`current`) are kept."""
    flags: list[str] = []
    if SCREENING_EXPIRED in reasons:
        flags.append(SessionFlag.SCREENING_EXPIRED)
    if any(reason != SCREENING_EXPIRED for reason in reasons):
        flags.append(SessionFlag.NOT_ELIGIBLE)
    flags.extend(flag for flag in REQUEST_FLAGS if flag in current)
    return flags


def next_due_on(
    *,
    is_active: bool,
    planned_sessions: int,
    active_sessions: int,
    last_session_on: date | None,
    interval_days: int,
    created_on: date,
) -> date | None:
    """When the next not-yet-booked session of the series is due.

    None when the series is over or every planned session is booked or done. Otherwise one
    interval after the latest booked or completed session (the next one is spaced from it), or,
    before anything is booked, the day the series was planned: it is due from the start. A date
    in the past means overdue.
    """
    if not is_active or active_sessions >= planned_sessions:
        return None
    if last_session_on is None:
        return created_on
    return last_session_on + timedelta(days=interval_days)
