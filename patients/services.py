"""Every write of patient data. Each owns its transaction and writes its audit event."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any
from uuid import UUID

import phonenumbers
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from clinic import audit
from clinic.errors import InvalidInput, InvalidState
from clinic.models import Clinic, User
from patients import rules
from patients.models import Patient, Screening

PATIENT_FIELDS = (
    "first_name",
    "last_name",
    "date_of_birth",
    "email",
    "phone",
    "fitzpatrick_type",
    "sms_opt_in",
    "email_opt_in",
)
SCREENING_ANSWERS = (
    *rules.CONTRAINDICATION_ANSWERS,
    *rules.WARNING_ANSWERS,
    "isotretinoin_last_dose_on",
)


def normalise_phone(raw: str) -> str:
    """E.164, or InvalidInput. National numbers are read in PHONE_DEFAULT_REGION."""
    if not raw.strip():
        return ""
    try:
        number = phonenumbers.parse(raw, settings.PHONE_DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput({"phone": ["Not a phone number."]}) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput({"phone": ["Not a valid phone number."]})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _check_patient(patient: Patient, today: date) -> None:
    errors: dict[str, list[str]] = {}
    if patient.date_of_birth > today:
        errors["date_of_birth"] = ["Must not be in the future."]
    elif patient.date_of_birth.year < rules.EARLIEST_BIRTH_YEAR:
        errors["date_of_birth"] = [f"Must be after {rules.EARLIEST_BIRTH_YEAR}."]
    if patient.sms_opt_in and not patient.phone:
        errors["sms_opt_in"] = ["Needs a phone number."]
    if patient.email_opt_in and not patient.email:
        errors["email_opt_in"] = ["Needs an email address."]
    if errors:
        raise InvalidInput(errors)


@transaction.atomic
def register_patient(*, actor: User, data: dict[str, Any]) -> Patient:
    clinic = Clinic.objects.get(pk=actor.clinic_uuid)
    patient = Patient(clinic=clinic, **{k: v for k, v in data.items() if k in PATIENT_FIELDS})
    patient.phone = normalise_phone(patient.phone)
    _check_patient(patient, clinic.today())
    patient.save(force_insert=True)
    audit.record(
        actor=actor,
        action="patient.create",
        object_type="patient",
        object_id=patient.id,
        patient_id=patient.id,
    )
    return patient


@transaction.atomic
def update_patient(*, actor: User, patient: Patient, changes: dict[str, Any]) -> Patient:
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    date_of_birth = patient.date_of_birth
    for name, value in changes.items():
        if name not in PATIENT_FIELDS:
            raise InvalidInput({name: ["This field cannot be changed."]})
        setattr(patient, name, value)
    if "phone" in changes:
        patient.phone = normalise_phone(patient.phone)
    _check_patient(patient, patient.clinic.today())
    patient.save()
    audit.record(
        actor=actor,
        action="patient.update",
        object_type="patient",
        object_id=patient.id,
        patient_id=patient.id,
        detail={"fields": sorted(changes)},
    )
    if patient.date_of_birth != date_of_birth:
        _eligibility_inputs_changed(patient.id)
    return patient


@transaction.atomic
def archive_patient(*, actor: User, patient: Patient) -> Patient:
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    if patient.is_archived:
        raise InvalidState("The patient is already archived.")
    patient.archived_at = timezone.now()
    patient.save(update_fields=["archived_at", "updated_at"])
    audit.record(
        actor=actor,
        action="patient.archive",
        object_type="patient",
        object_id=patient.id,
        patient_id=patient.id,
    )
    return patient


@transaction.atomic
def record_screening(*, actor: User, patient: Patient, answers: dict[str, Any]) -> Screening:
    """Store the questionnaire with its result as the rules and settings say today."""
    # Serialise screenings of one patient, so "latest" is well defined.
    patient = Patient.objects.select_for_update().select_related("clinic").get(pk=patient.pk)
    if patient.is_archived:
        raise InvalidState("The patient is archived.")
    clinic = patient.clinic
    now = timezone.now()
    today = clinic.local_date(now)
    last_dose = answers.get("isotretinoin_last_dose_on")
    if last_dose is not None and last_dose > today:
        raise InvalidInput({"isotretinoin_last_dose_on": ["Must not be in the future."]})

    facts = rules.ScreeningFacts(
        screened_on=today,
        contraindications=tuple(rules.contraindications(answers)),
        valid_until=rules.screening_valid_until(today, clinic.screening_valid_days),
        washout_ends_on=rules.washout_ends_on(last_dose, clinic.isotretinoin_washout_months),
    )
    result = rules.eligibility_on(date_of_birth=patient.date_of_birth, screening=facts, on=today)
    screening = Screening.objects.create(
        clinic=clinic,
        patient=patient,
        screened_at=now,
        screened_on=today,
        screened_by=actor,
        **{k: v for k, v in answers.items() if k in SCREENING_ANSWERS},
        eligible=result.eligible,
        # Listed as they hold on the screening day, the washout included while it runs.
        contraindications=rules.contraindications_on(
            facts.contraindications, facts.washout_ends_on, today
        ),
        warnings=rules.warnings(answers),
        valid_until=facts.valid_until,
        washout_ends_on=facts.washout_ends_on,
        eligible_from=result.eligible_from,
    )
    audit.record(
        actor=actor,
        action="screening.create",
        object_type="screening",
        object_id=screening.id,
        patient_id=patient.id,
    )
    _eligibility_inputs_changed(patient.id)
    return screening


# --- Eligibility inputs -------------------------------------------------------------------------

EligibilityListener = Callable[[UUID], None]
_eligibility_listeners: list[EligibilityListener] = []


def on_eligibility_inputs_changed(listener: EligibilityListener) -> None:
    """Let a layer above (scheduling's session flags, a cache of eligibility) act, inside the
    same transaction, whenever a patient's eligibility inputs change: a screening recorded, the
    date of birth corrected. Patients imports nothing above it; the listener is registered
    once, in that app's ready()."""
    if listener not in _eligibility_listeners:
        _eligibility_listeners.append(listener)


def _eligibility_inputs_changed(patient_id: UUID) -> None:
    for listener in _eligibility_listeners:
        listener(patient_id)
