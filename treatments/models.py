"""Cartridge (tip) lots, treatment records and Skinfuse aftercare."""

import uuid
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Value
from django.db.models.functions import Mod
from django.db.models.lookups import Exact

from clinic.ids import time_ordered_uuid
from clinic.models import Clinic
from treatments import rules


class TipLot(models.Model):
    """A received lot of single-use SkinPen cartridges. One cartridge serves one session."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="tip_lots")
    lot_number = models.CharField(max_length=64)
    gtin = models.CharField(max_length=14, blank=True, help_text="UDI device identifier.")
    # The UDI carrier's human-readable form when the lot was received by scanning its box
    # (treatments.gs1); the FHIR Device's udiCarrier.
    udi_carrier = models.CharField(max_length=512, blank=True)
    expires_on = models.DateField()
    quantity_received = models.PositiveIntegerField()
    quantity_used = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True)
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    recalled_at = models.DateTimeField(null=True, blank=True)
    # Held by an open recall notice of the watcher (a cache of "has an open RecallNotice",
    # kept in the notice's transaction under this row's lock, so taking a cartridge can
    # decide it in its conditional UPDATE).
    quarantined_at = models.DateTimeField(null=True, blank=True)
    recall_reason = models.TextField(blank=True)
    recalled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
    )

    class Meta:
        ordering = ["expires_on", "lot_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "lot_number"], name="treatments_tiplot_lot_number_unique"
            ),
            models.CheckConstraint(
                name="treatments_tiplot_received_positive",
                condition=models.Q(quantity_received__gte=1),
            ),
            models.CheckConstraint(
                name="treatments_tiplot_used_within_received",
                condition=models.Q(quantity_used__lte=models.F("quantity_received")),
            ),
            models.CheckConstraint(
                name="treatments_tiplot_recall_has_reason",
                condition=models.Q(recalled_at__isnull=True) | ~models.Q(recall_reason=""),
            ),
        ]

    def __str__(self) -> str:
        return self.lot_number

    @property
    def quantity_remaining(self) -> int:
        return self.quantity_received - self.quantity_used


class AftercareTemplate(models.Model):
    """A clinic's post-care protocol: steps by day offset. The default one is used for new
    treatments; each treatment keeps a snapshot, so editing a template never rewrites a plan."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=100)
    is_default = models.BooleanField(default=False)
    # [{"day_offset": int, "product": str, "instruction": str}, ...]
    steps = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_default", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic"],
                condition=models.Q(is_default=True),
                name="treatments_aftercaretemplate_one_default",
            ),
            models.UniqueConstraint(
                fields=["clinic", "name"], name="treatments_aftercaretemplate_name_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class TreatmentRecord(models.Model):
    """What was done in one session: the cartridge lot used (one cartridge, once), the
    handpiece, and the needle depth per area. Never edited in place: corrections are
    `TreatmentAmendment`s that keep this record as it was written."""

    id = models.UUIDField(primary_key=True, default=time_ordered_uuid, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    session = models.ForeignKey(
        "scheduling.Session", on_delete=models.PROTECT, related_name="treatment_records"
    )
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="treatment_records"
    )
    provider = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    tip_lot = models.ForeignKey(TipLot, on_delete=models.PROTECT, related_name="treatments")
    # The UDI production identifiers as they were at use, for recalls and exports.
    lot_number = models.CharField(max_length=64)
    lot_expires_on = models.DateField()
    # The cartridge's own serial (GS1 AI 21) when it was scanned: one cartridge, one treatment.
    serial_number = models.CharField(max_length=20, null=True, blank=True)  # noqa: DJ001
    handpiece = models.ForeignKey(
        "clinic.Handpiece", on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    handpiece_serial = models.CharField(max_length=64, blank=True)
    performed_at = models.DateTimeField()
    notes = models.TextField(blank=True)
    depth_override_reason = models.TextField(blank=True)
    # The screening warnings the provider acknowledged before treating (patients.rules codes).
    # The database's default too: a bulk writer (benchmarks' COPY) that leaves it out gets none.
    acknowledged_warnings = ArrayField(
        models.CharField(max_length=40), default=list, db_default=[], blank=True
    )
    recorded_at = models.DateTimeField(auto_now_add=True)
    # Tamper evidence: the clinic's records form one hash chain, hash = sha256(previous_hash ||
    # canonical JSON of the row and its depths), filled in by PostgreSQL at commit (trigger
    # treatments_treatmentrecord_chain, migration 0003). See treatments/integrity.py.
    sequence = models.BigIntegerField(null=True, blank=True, editable=False)
    # NULL, not "": "not chained yet" is what the seal trigger and the verifier look for.
    previous_hash = models.CharField(max_length=64, null=True, blank=True, editable=False)  # noqa: DJ001
    hash = models.CharField(max_length=64, null=True, blank=True, editable=False)  # noqa: DJ001

    class Meta:
        ordering = ["-performed_at", "-id"]
        constraints = [
            # A session uses one tip, once.
            models.UniqueConstraint(
                fields=["session"], name="treatments_treatmentrecord_one_per_session"
            ),
            models.UniqueConstraint(
                fields=["clinic", "sequence"], name="treatments_treatmentrecord_sequence_unique"
            ),
            # A scanned cartridge serial is used once per clinic (NULL: typed, not scanned).
            models.UniqueConstraint(
                fields=["clinic", "serial_number"],
                condition=models.Q(serial_number__isnull=False),
                name="treatments_treatmentrecord_serial_once",
            ),
        ]
        indexes = [
            models.Index(fields=["tip_lot", "-performed_at"], name="treatments_record_lot"),
            models.Index(fields=["clinic", "-performed_at"], name="treatments_record_clinic"),
        ]

    def __str__(self) -> str:
        return f"Treatment of session {self.session_id}"


class TreatmentDepth(models.Model):
    record = models.ForeignKey(TreatmentRecord, on_delete=models.PROTECT, related_name="depths")
    area = models.CharField(max_length=16)
    depth_mm = models.DecimalField(max_digits=3, decimal_places=2)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["record", "area"], name="treatments_treatmentdepth_area_once"
            ),
            models.CheckConstraint(
                name="treatments_treatmentdepth_known_area",
                condition=models.Q(area__in=rules.AREAS),
            ),
            # SkinPen settings: 0.25 to 2.5 mm (a treated area is above 0) ...
            models.CheckConstraint(
                name="treatments_treatmentdepth_depth_range",
                condition=models.Q(depth_mm__gte=rules.MIN_DEPTH, depth_mm__lte=rules.MAX_DEPTH),
            ),
            # ... in 0.25 mm steps.
            models.CheckConstraint(
                name="treatments_treatmentdepth_depth_step",
                condition=Exact(Mod("depth_mm", Value(rules.DEPTH_STEP)), Value(Decimal("0"))),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.area} {self.depth_mm} mm"


class TreatmentAmendment(models.Model):
    """A correction to a treatment record: who, when, why, and the corrected values.

    The original record is untouched; the current values are the latest amendment's."""

    id = models.UUIDField(primary_key=True, default=time_ordered_uuid, editable=False)
    record = models.ForeignKey(TreatmentRecord, on_delete=models.PROTECT, related_name="amendments")
    amended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    amended_at = models.DateTimeField(auto_now_add=True)
    reason = models.TextField()
    # Only what changed: {"notes": ..., "depths": [{"area", "depth_mm"}], "handpiece": ...}.
    changes = models.JSONField(encoder=DjangoJSONEncoder)

    class Meta:
        ordering = ["amended_at", "id"]
        constraints = [
            models.CheckConstraint(
                name="treatments_treatmentamendment_has_reason", condition=~models.Q(reason="")
            ),
        ]

    def __str__(self) -> str:
        return f"Amendment of {self.record_id} at {self.amended_at}"


class AftercarePlan(models.Model):
    """The aftercare given with one treatment: a snapshot of the clinic's template then."""

    id = models.UUIDField(primary_key=True, default=time_ordered_uuid, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    session = models.ForeignKey(
        "scheduling.Session", on_delete=models.PROTECT, related_name="aftercare_plans"
    )
    record = models.ForeignKey(
        TreatmentRecord, on_delete=models.PROTECT, related_name="aftercare_plans"
    )
    template = models.ForeignKey(
        AftercareTemplate, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    steps = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session"], name="treatments_aftercareplan_one_per_session"
            ),
        ]

    def __str__(self) -> str:
        return f"Aftercare for session {self.session_id}"


class RecallNoticeStatus(models.TextChoices):
    OPEN = "open", "Open"
    CONFIRMED = "confirmed", "Confirmed"
    DISMISSED = "dismissed", "Dismissed"


class RecallNotice(models.Model):
    """A regulator's recall that names one of the clinic's lots (the recall watcher).

    One per (recall, lot), ever: however often the feed is polled. While open, the lot is
    quarantined; an admin confirms it (the lot is recalled) or dismisses it (the lot is free)."""

    id = models.UUIDField(primary_key=True, default=time_ordered_uuid, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    tip_lot = models.ForeignKey(TipLot, on_delete=models.PROTECT, related_name="recall_notices")
    # Where the recall comes from ("openfda") and its id there (openFDA's res_event_number).
    source = models.CharField(max_length=32)
    source_id = models.CharField(max_length=64)
    lot_number = models.CharField(max_length=64)
    reason = models.TextField(blank=True)
    product_description = models.TextField(blank=True)
    # The recall as the feed gave it (public regulator data; nothing of the clinic's).
    feed_record = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    status = models.CharField(
        max_length=10, choices=RecallNoticeStatus.choices, default=RecallNoticeStatus.OPEN
    )
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    dismiss_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "source_id", "tip_lot"], name="treatments_recallnotice_once"
            ),
            models.CheckConstraint(
                name="treatments_recallnotice_resolved_when_closed",
                condition=(
                    models.Q(status=RecallNoticeStatus.OPEN, resolved_at__isnull=True)
                    | (
                        ~models.Q(status=RecallNoticeStatus.OPEN)
                        & models.Q(resolved_at__isnull=False)
                    )
                ),
            ),
            models.CheckConstraint(
                name="treatments_recallnotice_dismissal_has_reason",
                condition=~models.Q(status=RecallNoticeStatus.DISMISSED)
                | ~models.Q(dismiss_reason=""),
            ),
        ]
        indexes = [
            models.Index(
                fields=["clinic", "-created_at", "-id"], name="treatments_recallnotice_list"
            ),
            models.Index(
                fields=["tip_lot"],
                condition=models.Q(status=RecallNoticeStatus.OPEN),
                name="treatments_recallnotice_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.source_id}: lot {self.lot_number} ({self.status})"


class ConsentForm(models.Model):
    """One version of a clinic's consent form. Never edited: a revision is a new row (same
    title, next version, its own body and sha256) and the previous version becomes inactive.
    PostgreSQL holds the rules: one active version per title, versions unique, the sha256 the
    body's, and an UPDATE may only retire a version (trigger, migration 0007)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    title = models.CharField(max_length=rules.CONSENT_TITLE_MAX_LENGTH)
    version = models.PositiveIntegerField(default=1)
    body = models.TextField()
    # Hex SHA-256 of the UTF-8 body: what a signature is pinned to.
    sha256 = models.CharField(max_length=64)
    # Indication codes (scheduling.rules.Indication) the form covers; empty: every indication.
    indications = ArrayField(models.CharField(max_length=32), default=list, blank=True)
    required = models.BooleanField(default=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    revision_of = models.OneToOneField(
        "self", on_delete=models.PROTECT, related_name="revision", null=True, blank=True
    )

    class Meta:
        ordering = ["title", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "title", "version"], name="treatments_consentform_version_unique"
            ),
            models.UniqueConstraint(
                fields=["clinic", "title"],
                condition=models.Q(active=True),
                name="treatments_consentform_one_active",
            ),
            models.CheckConstraint(
                name="treatments_consentform_version_positive", condition=models.Q(version__gte=1)
            ),
            models.CheckConstraint(
                name="treatments_consentform_title_present", condition=~models.Q(title="")
            ),
            models.CheckConstraint(
                name="treatments_consentform_known_indications",
                condition=models.Q(indications__contained_by=list(rules.CONSENT_INDICATIONS)),
            ),
        ]
        indexes = [
            models.Index(
                fields=["clinic", "title", "-version"], name="treatments_consentform_list"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} v{self.version}"


class Consent(models.Model):
    """A patient's signature on one exact consent form version, witnessed by the signed-in
    staff member; revocable, never deleted."""

    id = models.UUIDField(primary_key=True, default=time_ordered_uuid, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="consents"
    )
    consent_form = models.ForeignKey(ConsentForm, on_delete=models.PROTECT, related_name="consents")
    signature_name = models.CharField(max_length=rules.SIGNATURE_NAME_MAX_LENGTH)
    signed_at = models.DateTimeField()
    witnessed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-signed_at", "-id"]
        constraints = [
            models.CheckConstraint(
                name="treatments_consent_signature_present", condition=~models.Q(signature_name="")
            ),
            models.CheckConstraint(
                name="treatments_consent_revocation_whole",
                condition=models.Q(revoked_at__isnull=True, revoked_by__isnull=True)
                | models.Q(revoked_at__isnull=False, revoked_by__isnull=False),
            ),
            models.CheckConstraint(
                name="treatments_consent_revoked_after_signed",
                condition=models.Q(revoked_at__isnull=True)
                | models.Q(revoked_at__gte=models.F("signed_at")),
            ),
        ]
        indexes = [
            models.Index(fields=["patient", "-signed_at"], name="treatments_consent_patient"),
        ]

    def __str__(self) -> str:
        return f"Consent of {self.patient_id} to {self.consent_form_id}"
