"""Reads of patient data that other code reuses (eligibility above all)."""

from __future__ import annotations

import re
from datetime import date
from uuid import UUID

from django.db.models import QuerySet

from clinic.plain_sql import CompiledQuery
from patients import rules
from patients.models import Patient, Screening


def patients_of_clinic(clinic_id: UUID, *, include_archived: bool = False) -> QuerySet[Patient]:
    patients = Patient.objects.filter(clinic_id=clinic_id)
    return patients if include_archived else patients.filter(archived_at__isnull=True)


def search_patients(patients: QuerySet[Patient], text: str) -> QuerySet[Patient]:
    """Every word must appear in the name, email or phone (substring, any case).

    "jane doe" finds Jane Doe; "555-0143" finds +12025550143. One trigram index over the
    patient's stored search text serves each word, so this stays fast on a large clinic.
    """
    for word in text.split()[:5]:
        digits = re.sub(r"\D", "", word)
        # A phone fragment is digits and separators only ("(202) 555-0143" word by word);
        # phones are stored as E.164 digits, so match the digits alone.
        is_phone = len(digits) >= 3 and not re.search(r"[^\d().+-]", word)
        patients = patients.filter(search_text__contains=digits if is_phone else word.upper())
    return patients


# Read by every eligibility answer, booking and treatment: compiled once (clinic.plain_sql).
_LATEST_SCREENING = CompiledQuery(
    lambda *, patient_id: Screening.objects.filter(patient_id=patient_id).order_by(
        "-screened_at", "-id"
    )[:1]
)


def latest_screening(patient_id: UUID) -> Screening | None:
    return _LATEST_SCREENING.first(patient_id=patient_id)  # type: ignore[return-value]


# A patient of one clinic by id, archived or not: compiled once (clinic.plain_sql).
_PATIENT_OF_CLINIC = CompiledQuery(
    lambda *, clinic_id, pk: patients_of_clinic(clinic_id, include_archived=True).filter(pk=pk)
)


def patient_of_clinic(clinic_id: UUID, pk: str | UUID) -> Patient | None:
    """The clinic's patient with this id; None for another clinic's, a missing one or an id
    that is not a UUID."""
    try:
        pk = pk if isinstance(pk, UUID) else UUID(str(pk))
    except ValueError:
        return None
    return _PATIENT_OF_CLINIC.first(clinic_id=clinic_id, pk=pk)  # type: ignore[return-value]


def screening_facts(screening: Screening | None) -> rules.ScreeningFacts | None:
    if screening is None:
        return None
    return rules.ScreeningFacts(
        screened_on=screening.screened_on,
        contraindications=rules.standing_contraindications(screening.contraindications),
        valid_until=screening.valid_until,
        washout_ends_on=screening.washout_ends_on,
    )


def eligibility_on(patient: Patient, on: date) -> rules.Eligibility:
    """The single answer to "may this patient be booked or treated on this date?"."""
    return rules.eligibility_on(
        date_of_birth=patient.date_of_birth,
        screening=screening_facts(latest_screening(patient.id)),
        on=on,
    )
