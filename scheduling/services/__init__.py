"""Every write of series and sessions. Each owns its transaction and writes its audit event.

By what they change: series.py (create, cancel a series), booking.py (book one session or a
whole series, reschedule), status.py (check in, cancel, no-show, complete); locks.py holds the
row locks they share, taken in the one order below. Callers import from this package.

Concurrency is decided by PostgreSQL:
- Overlaps (same provider, room or patient) are refused by exclusion constraints. Services check
  first for a precise answer; when a concurrent booking wins the race anyway, the constraint's
  refusal is turned into the very same error.
- "Series full" and the interval rule are decided one booking at a time per series: booking and
  rescheduling lock the series row (FOR NO KEY UPDATE) before they look at its sessions, and a
  cancel or no-show, which frees a place, locks it too once it has changed the session.
- Booking locks the patient row too, as recording a screening and archiving do, so a new
  screening cannot slip between a booking's eligibility check and its commit (the session's
  flags would be stale) and an archived patient gets no new session.
- Status changes are conditional UPDATEs (WHERE status IN the allowed sources): of two racing
  transitions exactly one changes the row.
- Locks are always taken in one order, patient -> session rows (by id) -> series, the order the
  treatments app follows when it records a treatment (patient, session, series, then
  complete_session), so no two of these paths can deadlock.
"""

from scheduling.services.booking import (
    DEADLOCK_RETRIES,
    KEEP,
    book_series,
    book_session,
    reschedule_session,
)
from scheduling.services.series import cancel_series, create_series
from scheduling.services.status import (
    cancel_session,
    check_in_session,
    complete_session,
    mark_no_show,
)

__all__ = [
    "DEADLOCK_RETRIES",
    "KEEP",
    "book_series",
    "book_session",
    "cancel_series",
    "cancel_session",
    "check_in_session",
    "complete_session",
    "create_series",
    "mark_no_show",
    "reschedule_session",
]
