"""What a treatment needs before it reaches the chair, beyond the session's status and the
patient's eligibility: the day-of attestation, the series' interval between actual treatment
days, the screening's warnings acknowledged and, with consent forms, the current consents.

Each check reads only (the warnings check is given the screening its caller read);
`treatments.services.record_treatment` calls them, in this order, while
it holds the patient's, the session's and the series' locks.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from uuid import UUID

from clinic.models import Clinic
from patients import rules as patient_rules
from patients.models import Screening
from scheduling import rules as scheduling_rules
from scheduling.errors import IntervalTooShort
from scheduling.models import Series, Session
from treatments import rules, selectors
from treatments.errors import AttestationRequired, ConsentRequired, WarningsNotAcknowledged
from treatments.models import Consent, ConsentForm


def check_attestation(clinic: Clinic, session: Session) -> None:
    """A clinic that asks on the day treats only a patient who answered at check-in."""
    if clinic.day_of_attestation_required and session.attested_at is None:
        raise AttestationRequired()


def check_interval(clinic: Clinic, series: Series, performed_on: date) -> None:
    """The series' minimum interval between actual treatment days, as between booked ones:
    sessions booked weeks apart but treated days apart would defeat it. The caller holds the
    series' lock, so of two racing treatments of one series the second sees the first."""
    treated = selectors.treated_at(series.pk)
    close = scheduling_rules.too_close(
        performed_on, [clinic.local_date(at) for at in treated], clinic.min_interval_days
    )
    if close:
        raise IntervalTooShort(
            f"Treatments of a series must be at least {clinic.min_interval_days} days apart; "
            f"this series was treated on {', '.join(d.isoformat() for d in close)}."
        )


def acknowledged(codes: Iterable[str]) -> list[str]:
    """The acknowledged warning codes as stored: once each, in the screening's order."""
    given = set(codes)
    return [code for code in patient_rules.WARNING_CODES if code in given]


def check_warnings(screening: Screening | None, acknowledged_warnings: list[str]) -> None:
    """Every warning of the screening in force (the patient's latest,
    patients.selectors.latest_screening: treatment needs it valid) is acknowledged by the
    provider."""
    in_force = screening.warnings if screening is not None else []
    missing = [code for code in in_force if code not in acknowledged_warnings]
    if missing:
        raise WarningsNotAcknowledged(missing)


def check_consents(clinic: Clinic, patient_id: UUID, indication: str) -> None:
    """Every active required form covering the series' indication is signed, in that exact
    version, by a consent not revoked. A clinic with no forms requires none."""
    forms = [
        form
        for form in ConsentForm.objects.filter(clinic=clinic, active=True, required=True)
        .order_by("title", "id")
        .only("id", "indications")
        if rules.form_covers(form.indications, indication)
    ]
    if not forms:
        return
    signed = set(
        Consent.objects.filter(
            patient_id=patient_id, revoked_at__isnull=True, consent_form__in=forms
        ).values_list("consent_form_id", flat=True)
    )
    missing = [form.id for form in forms if form.id not in signed]
    if missing:
        raise ConsentRequired(missing)
