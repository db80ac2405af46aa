"""Cartridge (tip) lots, treatment records and Skinfuse aftercare."""

import uuid

from django.conf import settings
from django.db import models

from clinic.models import Clinic


class TipLot(models.Model):
    """A received lot of single-use SkinPen cartridges. One cartridge serves one session."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="tip_lots")
    lot_number = models.CharField(max_length=64)
    gtin = models.CharField(max_length=14, blank=True, help_text="UDI device identifier.")
    expires_on = models.DateField()
    quantity_received = models.PositiveIntegerField()
    quantity_used = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True)
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    recalled_at = models.DateTimeField(null=True, blank=True)
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
