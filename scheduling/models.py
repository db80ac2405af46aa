"""Treatment series (the plan) and their sessions (the bookings).

PostgreSQL, not Python, is the judge of double booking: three exclusion constraints refuse two
active sessions whose times overlap for the same provider, the same room or the same patient,
however many requests race. Cancelled and no-show sessions fall outside the constraints' condition,
so they free their time.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import (
    ArrayField,
    RangeBoundary,
    RangeOperators,
)
from django.db import models

from clinic.ids import time_ordered_uuid
from clinic.models import Clinic, Room
from patients.models import Patient
from scheduling import rules
from scheduling.rules import (
    ACTIVE_SESSION_STATUSES,
    OPEN_SESSION_STATUSES,
    Indication,
    SeriesStatus,
    SessionFlag,
    SessionStatus,
)

__all__ = [
    "ACTIVE_SESSION_STATUSES",
    "OPEN_SESSION_STATUSES",
    "InboundMessage",
    "Indication",
    "Notification",
    "ScanLease",
    "Series",
    "SeriesStatus",
    "Session",
    "SessionFlag",
    "SessionStatus",
    "WebhookDelivery",
    "WebhookEndpoint",
]

# The notification outbox's model lives with its services (scheduling.notifications); importing
# it here registers it with the app. It refers to Session by name, so there is no import cycle.
from scheduling.notifications.models import InboundMessage, Notification, ScanLease

# Working hours, time off and calendar feeds (the appointment book's frame).
from scheduling.timetable import (  # noqa: F401
    CalendarFeed,
    TimeOff,
    TsTzRange,
    WorkingInterval,
)

# Webhook endpoints and their delivery outbox (scheduling.webhooks).
from scheduling.webhooks.models import WebhookDelivery, WebhookEndpoint


class Series(models.Model):
    """A planned course of sessions (rules.MIN/MAX_PLANNED_SESSIONS) for one indication.

    Progress (sessions completed and booked, the next due date) is derived from the sessions
    whenever it is read (scheduling.selectors), never stored, so it cannot drift.
    """

    id = models.UUIDField(primary_key=True, default=time_ordered_uuid, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="series")
    indication = models.CharField(max_length=32, choices=Indication.choices)
    planned_sessions = models.PositiveSmallIntegerField()
    interval_days = models.PositiveSmallIntegerField()
    status = models.CharField(
        max_length=16, choices=SeriesStatus.choices, default=SeriesStatus.ACTIVE
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "series"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                name="scheduling_series_planned_sessions_range",
                condition=models.Q(
                    planned_sessions__gte=rules.MIN_PLANNED_SESSIONS,
                    planned_sessions__lte=rules.MAX_PLANNED_SESSIONS,
                ),
            ),
            models.CheckConstraint(
                name="scheduling_series_interval_days_range",
                condition=models.Q(
                    interval_days__gte=rules.MIN_INTERVAL_DAYS,
                    interval_days__lte=rules.MAX_INTERVAL_DAYS,
                ),
            ),
        ]
        indexes = [
            models.Index(fields=["clinic", "-created_at"], name="scheduling_series_clinic"),
        ]

    def __str__(self) -> str:
        return f"{self.get_indication_display()} series of {self.patient_id}"


class Session(models.Model):
    """One booked treatment session of a series.

    `patient` repeats the series' patient so that the patient exclusion constraint can see it.
    A session's `number` in its series is computed when read, so it stays right when sessions
    are cancelled or moved.
    """

    id = models.UUIDField(primary_key=True, default=time_ordered_uuid, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    series = models.ForeignKey(Series, on_delete=models.PROTECT, related_name="sessions")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="sessions")
    provider = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    room = models.ForeignKey(
        Room, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=SessionStatus.choices, default=SessionStatus.BOOKED
    )
    flags = ArrayField(models.CharField(max_length=32), default=list, blank=True)
    cancel_reason = models.CharField(max_length=rules.CANCEL_REASON_MAX_LENGTH, blank=True)
    checked_in_at = models.DateTimeField(null=True, blank=True)
    # The patient confirmed by SMS reply (scheduling.notifications.inbound); cleared on a move.
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # The day-of attestation given at check-in (patients.rules.DAY_OF_ATTESTATION_ANSWERS):
    # all of it or none, and never a "yes", since any "yes" refuses the check-in.
    attested_at = models.DateTimeField(null=True, blank=True)
    attested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    attested_pregnant_or_nursing = models.BooleanField(null=True, blank=True)
    attested_active_skin_infection = models.BooleanField(null=True, blank=True)
    attested_open_wounds_in_area = models.BooleanField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["starts_at", "id"]
        constraints = [
            models.CheckConstraint(
                name="scheduling_session_duration_range",
                condition=models.Q(
                    ends_at__gte=models.F("starts_at")
                    + timedelta(minutes=rules.MIN_DURATION_MINUTES),
                    ends_at__lte=models.F("starts_at")
                    + timedelta(minutes=rules.MAX_DURATION_MINUTES),
                ),
            ),
            models.CheckConstraint(
                name="scheduling_session_flags_only_when_open",
                condition=models.Q(flags=[]) | models.Q(status__in=OPEN_SESSION_STATUSES),
            ),
            models.CheckConstraint(
                name="scheduling_session_attestation_whole",
                condition=models.Q(
                    attested_at__isnull=True,
                    attested_by__isnull=True,
                    attested_pregnant_or_nursing__isnull=True,
                    attested_active_skin_infection__isnull=True,
                    attested_open_wounds_in_area__isnull=True,
                )
                | models.Q(
                    attested_at__isnull=False,
                    attested_by__isnull=False,
                    checked_in_at__isnull=False,
                    attested_pregnant_or_nursing__isnull=False,
                    attested_active_skin_infection__isnull=False,
                    attested_open_wounds_in_area__isnull=False,
                ),
            ),
            models.CheckConstraint(
                name="scheduling_session_attestation_clear",
                condition=models.Q(attested_at__isnull=True)
                | models.Q(
                    attested_pregnant_or_nursing=False,
                    attested_active_skin_infection=False,
                    attested_open_wounds_in_area=False,
                ),
            ),
            ExclusionConstraint(
                name="scheduling_session_no_provider_overlap",
                expressions=[
                    (TsTzRange("starts_at", "ends_at", RangeBoundary()), RangeOperators.OVERLAPS),
                    ("provider", RangeOperators.EQUAL),
                ],
                condition=models.Q(status__in=ACTIVE_SESSION_STATUSES),
            ),
            ExclusionConstraint(
                name="scheduling_session_no_room_overlap",
                expressions=[
                    (TsTzRange("starts_at", "ends_at", RangeBoundary()), RangeOperators.OVERLAPS),
                    ("room", RangeOperators.EQUAL),
                ],
                condition=models.Q(status__in=ACTIVE_SESSION_STATUSES),
            ),
            ExclusionConstraint(
                name="scheduling_session_no_patient_overlap",
                expressions=[
                    (TsTzRange("starts_at", "ends_at", RangeBoundary()), RangeOperators.OVERLAPS),
                    ("patient", RangeOperators.EQUAL),
                ],
                condition=models.Q(status__in=ACTIVE_SESSION_STATUSES),
            ),
        ]
        indexes = [
            # The day view: one clinic's sessions in a time range.
            models.Index(fields=["clinic", "starts_at"], name="scheduling_session_clinic_day"),
            models.Index(fields=["series", "starts_at"], name="scheduling_session_series"),
        ]

    def __str__(self) -> str:
        return f"Session {self.id} at {self.starts_at:%Y-%m-%d %H:%M}"

    @property
    def attestation(self) -> dict[str, object] | None:
        """The day-of attestation as the API shows it, or None."""
        if self.attested_at is None:
            return None
        return {
            "pregnant_or_nursing": self.attested_pregnant_or_nursing,
            "active_skin_infection": self.attested_active_skin_infection,
            "open_wounds_in_area": self.attested_open_wounds_in_area,
            "attested_at": self.attested_at,
            "attested_by": self.attested_by_id,
        }

    @property
    def duration_minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)
