"""Clinics, their staff and roles, rooms, handpieces, the audit trail and API bookkeeping.

Every other object in the system belongs to exactly one clinic (a `clinic` foreign key), which
is what the API's clinic scoping filters on.
"""

import uuid
import zoneinfo
from datetime import date, datetime

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone as django_timezone

from clinic.ids import time_ordered_uuid
from clinic.rules import (
    CLINIC_SETTING_RANGES,
    REQUEST_ID_MAX_LENGTH,
    AuditOutcome,
    Role,
    day_bounds,
)

__all__ = [
    "REQUEST_ID_MAX_LENGTH",
    "AuditEvent",
    "AuditOutcome",
    "Clinic",
    "Handpiece",
    "IdempotencyKey",
    "LoginFailureCounter",
    "Role",
    "Room",
    "User",
]
_SETTING = CLINIC_SETTING_RANGES


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone name.")


class Clinic(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, validators=[validate_timezone])
    # Practice settings with the defaults of domain.md; none is a regulatory constant.
    screening_valid_days = models.PositiveSmallIntegerField(default=90)
    min_interval_days = models.PositiveSmallIntegerField(default=21)
    default_interval_days = models.PositiveSmallIntegerField(default=30)
    isotretinoin_washout_months = models.PositiveSmallIntegerField(default=6)
    reminder_lead_hours = models.PositiveSmallIntegerField(default=24)
    # Clinics re-confirm pregnancy, infection and open wounds on the day (domain.md).
    day_of_attestation_required = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="clinic_clinic_screening_valid_days_range",
                condition=models.Q(
                    screening_valid_days__gte=_SETTING["screening_valid_days"].min,
                    screening_valid_days__lte=_SETTING["screening_valid_days"].max,
                ),
            ),
            models.CheckConstraint(
                name="clinic_clinic_min_interval_days_range",
                condition=models.Q(
                    min_interval_days__gte=_SETTING["min_interval_days"].min,
                    min_interval_days__lte=_SETTING["min_interval_days"].max,
                ),
            ),
            models.CheckConstraint(
                name="clinic_clinic_default_interval_not_below_minimum",
                condition=models.Q(default_interval_days__gte=models.F("min_interval_days"))
                & models.Q(default_interval_days__lte=_SETTING["default_interval_days"].max),
            ),
            # The lower bound (0) is the column's own: a positive small integer.
            models.CheckConstraint(
                name="clinic_clinic_washout_months_range",
                condition=models.Q(
                    isotretinoin_washout_months__lte=_SETTING["isotretinoin_washout_months"].max
                ),
            ),
            models.CheckConstraint(
                name="clinic_clinic_reminder_lead_hours_range",
                condition=models.Q(
                    reminder_lead_hours__gte=_SETTING["reminder_lead_hours"].min,
                    reminder_lead_hours__lte=_SETTING["reminder_lead_hours"].max,
                ),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    # The clinic's local time, in one place: day views, eligibility dates, exports, reminders.
    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def today(self) -> date:
        """Today's date where the clinic is."""
        return django_timezone.localdate(timezone=self.zone)

    def localtime(self, moment: datetime) -> datetime:
        """An instant on the clinic's wall clock."""
        return django_timezone.localtime(moment, self.zone)

    def local_date(self, moment: datetime) -> date:
        """The calendar day an instant falls on in the clinic's zone."""
        return self.localtime(moment).date()

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """[start, end) of one of the clinic's days as UTC instants (23 or 25 h across DST)."""
        return day_bounds(day, self.zone)


class User(AbstractUser):
    """A member of a clinic's staff. Usernames are unique across clinics: login names no clinic."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Null only for platform superusers made with createsuperuser; they have no API access.
    clinic = models.ForeignKey(
        Clinic, on_delete=models.PROTECT, related_name="staff", null=True, blank=True
    )
    role = models.CharField(max_length=20, choices=Role.choices, blank=True)
    full_name = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="clinic_user_staff_has_clinic_and_role",
                condition=models.Q(is_superuser=True)
                | (models.Q(clinic__isnull=False) & ~models.Q(role="")),
            ),
            models.UniqueConstraint(Lower("username"), name="clinic_user_username_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.full_name or self.username

    @property
    def clinic_uuid(self) -> uuid.UUID:
        """The staff member's clinic id; API users always have one (HasRole checks it)."""
        if self.clinic_id is None:
            raise ValueError("platform superusers belong to no clinic")
        return self.clinic_id


class Room(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="rooms")
    name = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), "clinic", name="clinic_room_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class Handpiece(models.Model):
    """The reusable, serial-tracked SkinPen handpiece (the cartridge is the single-use part)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="handpieces")
    serial_number = models.CharField(max_length=64)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["serial_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "serial_number"], name="clinic_handpiece_serial_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.serial_number


class AuditEvent(models.Model):
    """Append-only (a trigger refuses UPDATE and DELETE): who did what to which record, when.

    `patient_id` is a plain column, not a foreign key: the audit trail sits below the patients
    app and must outlive any change to it. No clinical detail goes into `detail`.
    """

    id = models.UUIDField(primary_key=True, default=time_ordered_uuid, editable=False)
    clinic = models.ForeignKey(
        Clinic, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    # The username at the time, or the task name for background work.
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    patient_id = models.UUIDField(null=True, blank=True)
    request_id = models.CharField(max_length=REQUEST_ID_MAX_LENGTH, blank=True)
    outcome = models.CharField(max_length=10, choices=AuditOutcome.choices)
    detail = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    # Tamper evidence (HIPAA 164.312(c)): the clinic's events form one hash chain,
    # hash = sha256(previous_hash || canonical JSON of this row). PostgreSQL fills these three in
    # at commit (trigger clinic_auditevent_chain, migration 0003), under a per-clinic advisory
    # lock, so they are empty only inside the writing transaction. See clinic/audit.py.
    sequence = models.BigIntegerField(null=True, blank=True, editable=False)
    # NULL, not "": "not chained yet" is what the seal trigger and the verifier look for.
    previous_hash = models.CharField(max_length=64, null=True, blank=True, editable=False)  # noqa: DJ001
    hash = models.CharField(max_length=64, null=True, blank=True, editable=False)  # noqa: DJ001

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "sequence"], name="clinic_auditevent_sequence_unique"
            ),
            # Logins with an unknown username belong to no clinic: their own chain.
            models.UniqueConstraint(
                fields=["sequence"],
                condition=models.Q(clinic__isnull=True),
                name="clinic_auditevent_sequence_unique_no_clinic",
            ),
        ]
        indexes = [
            models.Index(fields=["clinic", "-at"], name="clinic_audit_clinic_at"),
            models.Index(fields=["clinic", "patient_id", "-at"], name="clinic_audit_patient_at"),
            models.Index(fields=["clinic", "actor", "-at"], name="clinic_audit_actor_at"),
            models.Index(fields=["clinic", "action", "-at"], name="clinic_audit_action_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.outcome}"


class IdempotencyKey(models.Model):
    """The stored first response to a POST with an Idempotency-Key, per user."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField(null=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="clinic_idempotencykey_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.key} -> {self.response_status}"


class LoginFailureCounter(models.Model):
    """Login attempts not yet given back, per key (`user:<name>`, `device:<id>`,
    `address:<ip>`), and the earliest moment the next attempt is let through.

    Counted atomically by one statement per attempt (`clinic.auth.admit_attempt`); forgotten a
    LOGIN_FAILURE_WINDOW_SECONDS after the last attempt or the end of the delay.
    """

    key = models.CharField(max_length=300, primary_key=True)
    failures = models.PositiveIntegerField()
    last_failure_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Whether the last attempt on this key was refused (read back by the counting statement).
    last_refused = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.key}: {self.failures}"


class AuditCheckpoint(models.Model):
    """A signed head of one clinic's hash chain: (chain, sequence, hash) at `signed_at`.

    The chains prove that no row was altered *unless the whole tail was re-hashed*, which anyone
    with write access to the database can do. A checkpoint is signed with an Ed25519 key kept
    outside the database (AUDIT_SIGNING_KEY), so a rewrite that keeps the chain internally
    consistent still disagrees with an earlier checkpoint, and `verify_audit` names it.
    Append-only (a trigger refuses UPDATE and DELETE), like the events. See clinic/checkpoints.py.
    """

    id = models.BigAutoField(primary_key=True)
    # The chained table (clinic_auditevent, treatments_treatmentrecord).
    chain = models.CharField(max_length=64)
    clinic = models.ForeignKey(
        Clinic, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    sequence = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    signed_at = models.DateTimeField()
    # sha256 of the raw public key, first 16 hex digits: which key signed (keys rotate).
    key_id = models.CharField(max_length=16)
    signature = models.CharField(max_length=128)
    reason = models.CharField(max_length=16)

    class Meta:
        ordering = ["chain", "clinic", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["chain", "clinic", "sequence"],
                nulls_distinct=False,
                name="clinic_auditcheckpoint_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(sequence__gte=1), name="clinic_auditcheckpoint_sequence_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.chain} clinic={self.clinic_id} #{self.sequence} {self.hash[:12]}"
