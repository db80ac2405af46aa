"""The appointment book's frame: when a provider works, when a provider or room is away, and
the secret calendar feed a provider subscribes to. Loaded by scheduling.models (one import line
at its end).

Working hours are wall-clock intervals of a weekday in the clinic's zone (minutes from local
midnight, so an interval may end at 24:00), turned into instants day by day: a DST change moves
the instants, never the local times. Time off is a range of instants.
"""

import uuid

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import (
    DateTimeRangeField,
    IntegerRangeField,
    RangeBoundary,
    RangeOperators,
)
from django.contrib.postgres.indexes import GistIndex
from django.db import models

from clinic.models import Clinic, Room


class Int4Range(models.Func):
    function = "INT4RANGE"
    output_field = IntegerRangeField()


class TsTzRange(models.Func):
    """PostgreSQL's tstzrange(start, end, '[)'): a session holds [starts_at, ends_at), so two
    back-to-back sessions (one ends at 10:00, the next starts at 10:00) do not overlap."""

    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


def span() -> TsTzRange:
    """A row's [starts_at, ends_at) as the GiST indexes hold it (the sessions' exclusion
    constraints, time off's span indexes). "Overlaps [a, b)" is asked as
    `.alias(span=span()).filter(span__overlap=(a, b))`, never as `ends_at > a AND starts_at < b`:
    the GiST index then finds the few rows near [a, b), where the two comparisons make a
    btree read every earlier row of the provider (years of sessions at a busy clinic)."""
    return TsTzRange("starts_at", "ends_at", RangeBoundary())


class WorkingInterval(models.Model):
    """One weekly interval in which a provider takes bookings (weekday 0 = Monday)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    provider = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="working_intervals"
    )
    weekday = models.PositiveSmallIntegerField()
    starts_minute = models.PositiveSmallIntegerField()
    ends_minute = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["weekday", "starts_minute"]
        constraints = [
            models.CheckConstraint(
                name="scheduling_workinginterval_weekday_range",
                condition=models.Q(weekday__gte=0, weekday__lte=6),
            ),
            models.CheckConstraint(
                name="scheduling_workinginterval_ends_after_starts",
                condition=models.Q(
                    starts_minute__gte=0,
                    ends_minute__gt=models.F("starts_minute"),
                    ends_minute__lte=24 * 60,
                ),
            ),
            ExclusionConstraint(
                name="scheduling_workinginterval_no_overlap",
                expressions=[
                    (Int4Range("starts_minute", "ends_minute"), RangeOperators.OVERLAPS),
                    ("provider", RangeOperators.EQUAL),
                    ("weekday", RangeOperators.EQUAL),
                ],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider_id} weekday {self.weekday} {self.starts_minute}-{self.ends_minute}"


class TimeOff(models.Model):
    """A provider or a room (exactly one) unavailable over [starts_at, ends_at)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    provider = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
    )
    room = models.ForeignKey(
        Room, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_at", "id"]
        constraints = [
            models.CheckConstraint(
                name="scheduling_timeoff_ends_after_starts",
                condition=models.Q(ends_at__gt=models.F("starts_at")),
            ),
            models.CheckConstraint(
                name="scheduling_timeoff_one_resource",
                condition=(models.Q(provider__isnull=False) & models.Q(room__isnull=True))
                | (models.Q(provider__isnull=True) & models.Q(room__isnull=False)),
            ),
        ]
        indexes = [
            models.Index(fields=["clinic", "starts_at"], name="scheduling_timeoff_clinic"),
            models.Index(fields=["provider", "starts_at"], name="scheduling_timeoff_provider"),
            models.Index(fields=["room", "starts_at"], name="scheduling_timeoff_room"),
            GistIndex(span(), "provider", name="scheduling_timeoff_prov_span"),
            GistIndex(span(), "room", name="scheduling_timeoff_room_span"),
        ]

    def __str__(self) -> str:
        return f"Time off {self.starts_at:%Y-%m-%d %H:%M} - {self.ends_at:%Y-%m-%d %H:%M}"


class CalendarFeed(models.Model):
    """A staff member's secret calendar URL. Only a SHA-256 of the secret is kept; making a new
    one replaces the row, so the older URL stops working at once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    staff = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calendar_feed"
    )
    secret_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Calendar feed of {self.staff_id}"
