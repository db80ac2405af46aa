"""Reads of patient data that other code reuses (eligibility above all)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from uuid import UUID

from django.db import connection
from django.db.models import QuerySet
from django.db.models.lookups import Contains, PatternLookup

from clinic.plain_sql import CompiledQuery, Pages
from patients import rules
from patients.models import Patient, Screening


def patients_of_clinic(clinic_id: UUID, *, include_archived: bool = False) -> QuerySet[Patient]:
    patients = Patient.objects.filter(clinic_id=clinic_id)
    return patients if include_archived else patients.filter(archived_at__isnull=True)


class _LikePattern(Contains):
    """`contains` given its LIKE pattern whole (the word already escaped and between %s,
    `_patterns`): the same SQL as `search_text__contains`, but the parameter is the caller's
    own value, which a compiled query can carry (clinic.plain_sql)."""

    def process_rhs(self, qn: Any, connection: Any) -> Any:
        # BuiltinLookup's: the value as given, without PatternLookup's escaping and %...%.
        return super(PatternLookup, self).process_rhs(qn, connection)


# The stored search text is a generated column: its lookups are its output field's.
_search_text: Any = Patient._meta.get_field("search_text")
_search_text.output_field.register_lookup(_LikePattern, lookup_name="like_pattern")

# At most this many words of a search are matched (the rest are ignored).
SEARCH_WORDS = 5


def _patterns(text: str) -> list[str]:
    """Each word's LIKE pattern against the stored search text (upper case, phone as digits)."""
    patterns = []
    for word in text.split()[:SEARCH_WORDS]:
        digits = re.sub(r"\D", "", word)
        # A phone fragment is digits and separators only ("(202) 555-0143" word by word);
        # phones are stored as E.164 digits, so match the digits alone.
        is_phone = len(digits) >= 3 and not re.search(r"[^\d().+-]", word)
        needle = digits if is_phone else word.upper()
        patterns.append(f"%{connection.ops.prep_for_like_query(needle)}%")
    return patterns


def search_patients(patients: QuerySet[Patient], text: str) -> QuerySet[Patient]:
    """Every word must appear in the name, email or phone (substring, any case).

    "jane doe" finds Jane Doe; "555-0143" finds +12025550143. One trigram index over the
    patient's stored search text serves each word, so this stays fast on a large clinic.
    """
    return _matching(patients, _patterns(text))


def _matching(patients: QuerySet[Patient], patterns: list[str]) -> QuerySet[Patient]:
    for pattern in patterns:
        patients = patients.filter(search_text__like_pattern=pattern)
    return patients


def _active_matching(*, clinic_id: UUID, **patterns: str | None) -> QuerySet[Patient]:
    # w0, w1, ...: the words in order; None past the last.
    given = [patterns[name] for name in sorted(patterns)]
    return _matching(patients_of_clinic(clinic_id), [p for p in given if p is not None])


# The patient list as the front desk reads it (active patients, maybe a search): compiled once
# per number of words.
_ACTIVE_MATCHING = CompiledQuery(_active_matching)


def active_patients_matching(clinic_id: UUID, text: str) -> Pages:
    """The clinic's active patients matching `text` as `search_patients` matches it, in the
    list's order, as a paginator slices a queryset: each page one compiled statement."""
    patterns: list[str | None] = [*_patterns(text)]
    patterns += [None] * (SEARCH_WORDS - len(patterns))
    return _ACTIVE_MATCHING.pages(
        clinic_id=clinic_id, **{f"w{k}": pattern for k, pattern in enumerate(patterns)}
    )


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
