"""Patients and their eligibility screenings. Patients are archived, never deleted."""

import contextlib
import uuid

import phonenumbers
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import Value
from django.db.models.functions import Concat, Upper

from clinic.ids import time_ordered_uuid
from clinic.models import Clinic
from patients.rules import FITZPATRICK_TYPES


class Patient(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="patients")
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    date_of_birth = models.DateField()
    email = models.EmailField(max_length=254, blank=True)
    # E.164 (+15551234567), normalised on the way in.
    phone = models.CharField(max_length=20, blank=True)
    fitzpatrick_type = models.PositiveSmallIntegerField()
    sms_opt_in = models.BooleanField(default=False)
    email_opt_in = models.BooleanField(default=False)
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    search_text = models.GeneratedField(
        expression=Upper(
            Concat(
                "first_name",
                Value(" "),
                "last_name",
                Value(" "),
                "email",
                Value(" "),
                "phone",
                output_field=models.TextField(),
            )
        ),
        output_field=models.TextField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        constraints = [
            models.CheckConstraint(
                name="patients_patient_fitzpatrick_type_range",
                condition=models.Q(
                    fitzpatrick_type__gte=FITZPATRICK_TYPES[0],
                    fitzpatrick_type__lte=FITZPATRICK_TYPES[-1],
                ),
            ),
            models.CheckConstraint(
                name="patients_patient_sms_opt_in_needs_phone",
                condition=models.Q(sms_opt_in=False) | ~models.Q(phone=""),
            ),
            models.CheckConstraint(
                name="patients_patient_email_opt_in_needs_email",
                condition=models.Q(email_opt_in=False) | ~models.Q(email=""),
            ),
        ]
        indexes = [
            models.Index(
                fields=["clinic", "last_name", "first_name", "id"],
                name="patients_patient_clinic_name",
                condition=models.Q(archived_at__isnull=True),
            ),
            # ?search= is a substring match on one stored, upper-cased text of name, email
            # and phone, always within one clinic: one GIN index over the clinic (btree_gin)
            # and the text's trigrams serves both, so a clinic's search never reads the
            # matches of the other ninety-nine clinics of a chain to filter them out.
            GinIndex(
                "clinic",
                OpClass("search_text", name="gin_trgm_ops"),
                name="patients_patient_clinic_search",
            ),
            # An SMS reply is matched to patients by the sender's phone (stored as E.164).
            models.Index(
                fields=["phone"], name="patients_patient_phone", condition=~models.Q(phone="")
            ),
        ]

    def __str__(self) -> str:
        # Never the name: whatever prints a patient (a log line, an exception, the back
        # office's history) prints no patient data.
        return f"Patient {self.pk}"

    def identifying_values(self) -> list[str]:
        """What the log filter must never let through (clinic.logs.remember). Read from the
        instance's own fields only: a deferred field is not loaded for it."""
        fields = self.__dict__
        values = [fields.get(name) for name in ("first_name", "last_name", "email", "phone")]
        born = fields.get("date_of_birth")
        if born is not None:
            values += [born.isoformat(), f"{born:%m/%d/%Y}", f"{born:%d/%m/%Y}"]
        first, last = fields.get("first_name"), fields.get("last_name")
        if first and last:
            values.append(f"{first} {last}")
        phone = fields.get("phone")
        if phone:
            # Stored as E.164; also its digits alone and the national number (2025550143).
            values.append(phone.lstrip("+"))
            with contextlib.suppress(phonenumbers.NumberParseException):
                values.append(str(phonenumbers.parse(phone).national_number))
        return [value for value in values if value]

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class Screening(models.Model):
    """One eligibility questionnaire, with its result as computed when it was taken.

    The result (contraindications, warnings, validity, washout end) is stored, not recomputed,
    so a later change of the rules or of the clinic's settings never rewrites history.
    """

    id = models.UUIDField(primary_key=True, default=time_ordered_uuid, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="screenings")
    screened_at = models.DateTimeField()
    screened_on = models.DateField(help_text="The screening day in the clinic's time zone.")
    screened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    # The answers.
    pregnant_or_nursing = models.BooleanField(default=False)
    active_skin_cancer_in_area = models.BooleanField(default=False)
    open_wounds_in_area = models.BooleanField(default=False)
    bleeding_disorder = models.BooleanField(default=False)
    metal_or_anesthetic_allergy = models.BooleanField(default=False)
    active_skin_infection = models.BooleanField(default=False)
    isotretinoin_last_dose_on = models.DateField(null=True, blank=True)
    anticoagulants = models.BooleanField(default=False)
    keloid_history = models.BooleanField(default=False)
    herpes_simplex_history = models.BooleanField(default=False)
    eczema_or_psoriasis_in_area = models.BooleanField(default=False)
    recent_scars = models.BooleanField(default=False)
    scleroderma = models.BooleanField(default=False)
    immunosuppressed = models.BooleanField(default=False)
    diabetes = models.BooleanField(default=False)

    # The result, frozen at screening time.
    eligible = models.BooleanField(help_text="Eligible on the screening day.")
    contraindications = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    warnings = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    valid_until = models.DateField()
    washout_ends_on = models.DateField(null=True, blank=True)
    eligible_from = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["-screened_at", "-id"]
        indexes = [
            models.Index(fields=["patient", "-screened_at"], name="patients_screening_latest"),
        ]
        constraints = [
            models.CheckConstraint(
                name="patients_screening_valid_after_screened",
                condition=models.Q(valid_until__gte=models.F("screened_on")),
            ),
            models.CheckConstraint(
                name="patients_screening_dose_not_after_screening",
                condition=models.Q(isotretinoin_last_dose_on__isnull=True)
                | models.Q(isotretinoin_last_dose_on__lte=models.F("screened_on")),
            ),
        ]

    def __str__(self) -> str:
        return f"Screening of {self.patient_id} on {self.screened_on}"
