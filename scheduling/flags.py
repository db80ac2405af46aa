"""`Session.flags`, a cache of the eligibility rules on each open session's local date.

Its inputs are the patient's date of birth, their latest screening, the session's time and the
clinic's time zone. Every service that changes one refreshes the cache in its own transaction:
booking and rescheduling set it (scheduling.services.booking._check_booking), status changes
clear it, and the two entry points below are called by the lower apps' hooks
(SchedulingConfig.ready()). The notification scan's refresh_open_session_flags is only a safety
net.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from clinic import audit
from clinic.models import Clinic
from patients import rules as patient_rules
from patients import selectors as patient_selectors
from patients.models import Screening
from scheduling import rules
from scheduling.models import Session
from scheduling.rules import OPEN_SESSION_STATUSES

# The clinic settings a session's flags depend on. Screening validity and washout are frozen
# into each screening when it is recorded, so only the zone (the session's local date) counts.
FLAG_INPUT_SETTINGS = frozenset({"timezone"})


def refresh_flags(
    *,
    patient_id: UUID | None = None,
    clinic_id: UUID | None = None,
    session_ids: Iterable[UUID] | None = None,
) -> dict[UUID, list[str]]:
    """Recompute the flags of open sessions (one patient's, one clinic's, or the given ones).

    Runs inside the caller's transaction when there is one (a screening being recorded), so
    the flags change together with their cause. Returns the sessions whose flags changed, with
    their new flags, for whoever needs to tell someone (the notification scan).
    """
    if patient_id is None and clinic_id is None and session_ids is None:
        raise ValueError("refresh_flags needs a patient_id, a clinic_id or session_ids")
    sessions = Session.objects.filter(status__in=OPEN_SESSION_STATUSES)
    if patient_id is not None:
        sessions = sessions.filter(patient_id=patient_id)
    if clinic_id is not None:
        sessions = sessions.filter(clinic_id=clinic_id)
    if session_ids is not None:
        sessions = sessions.filter(pk__in=list(session_ids))
    with transaction.atomic():
        rows = list(
            sessions.select_for_update(no_key=True, of=("self",))
            .select_related("patient", "clinic")
            .order_by("id")
        )
        latest = _latest_screenings({row.patient_id for row in rows})
        changed: list[Session] = []
        now = timezone.now()
        for row in rows:
            result = patient_rules.eligibility_on(
                date_of_birth=row.patient.date_of_birth,
                screening=patient_selectors.screening_facts(latest.get(row.patient_id)),
                on=row.clinic.local_date(row.starts_at),
            )
            flags = rules.session_flags(result.reasons, row.flags)
            if flags != row.flags:
                row.flags = flags
                row.updated_at = now
                changed.append(row)
        Session.objects.bulk_update(changed, ["flags", "updated_at"])
        for row in changed:
            audit.record(
                actor=None,
                actor_label="scheduling.refresh_flags",
                clinic_id=row.clinic_id,
                action="session.flags",
                object_type="session",
                object_id=row.id,
                patient_id=row.patient_id,
            )
    return {row.id: row.flags for row in changed}


def _latest_screenings(patient_ids: set[UUID]) -> dict[UUID, Screening]:
    if not patient_ids:
        return {}
    latest = (
        Screening.objects.filter(patient_id__in=patient_ids)
        .order_by("patient_id", "-screened_at", "-id")
        .distinct("patient_id")
    )
    return {screening.patient_id: screening for screening in latest}


def refresh_flags_for_patient(patient_id: UUID) -> None:
    """A patient's eligibility inputs changed (a screening, the date of birth): registered with
    patients.services.on_eligibility_inputs_changed."""
    refresh_flags(patient_id=patient_id)


def refresh_flags_for_clinic(clinic: Clinic, changed_fields: frozenset[str]) -> None:
    """A clinic's settings changed: registered with clinic.services.on_clinic_settings_changed."""
    if changed_fields & FLAG_INPUT_SETTINGS:
        refresh_flags(clinic_id=clinic.id)
