"""The row locks every write of series and sessions takes, in the one order: patient, then
session rows (by id), then series (see the package docstring)."""

from __future__ import annotations

from typing import cast
from uuid import UUID

from clinic.plain_sql import CompiledQuery
from patients.models import Patient
from scheduling.models import Series

# Every booking, reschedule and cancellation takes these: compiled once (clinic.plain_sql).
_PATIENT = CompiledQuery(
    lambda *, pk: Patient.objects.select_for_update(no_key=True).filter(pk=pk), locks=True
)
_SERIES = CompiledQuery(
    lambda *, pk: (
        Series.objects.select_for_update(no_key=True, of=("self",))
        .select_related("clinic", "patient")
        .filter(pk=pk)
    ),
    locks=True,
)


def lock_patient(patient_id: UUID) -> Patient:
    """The patient, locked (FOR NO KEY UPDATE): bookings, screenings and archiving take it first."""
    return cast(Patient, _PATIENT.get(pk=patient_id))


def lock_series(series_id: UUID, *, patient: Patient | None = None) -> Series:
    """The series, locked, with its clinic (unlocked) and its patient (locked by the caller)."""
    series = cast(Series, _SERIES.get(pk=series_id))
    if patient is not None:
        series.patient = patient
    return series
