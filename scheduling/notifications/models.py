"""The notification outbox: every message to a patient is a row here before it is sent.

A row is the claim on a side effect. Its unique key says a message about one subject goes out
once per channel, ever, however many scans, retries or workers see it; its status moves
pending -> sending -> sent by conditional UPDATEs (scheduling.notifications.sender), so of two
workers only one sends it. Registered by scheduling.models, which imports this module; it names
the session model as a string so the two never import each other.
"""

from django.db import models

from clinic.ids import time_ordered_uuid
from clinic.models import Clinic, User
from patients.models import Patient
from scheduling.rules import InboundAction


class NotificationKind(models.TextChoices):
    SESSION_REMINDER = "session_reminder", "Session reminder"
    NEXT_SESSION_DUE = "next_session_due", "Next session due"
    AFTERCARE_CHECKIN = "aftercare_checkin", "Aftercare check-in"
    SCREENING_EXPIRING = "screening_expiring", "Screening expiring"
    LOT_RECALL = "lot_recall", "Lot recall"
    # To staff: a regulator's recall names a lot of the clinic (treatments.recalls).
    RECALL_NOTICE = "recall_notice", "Recall notice"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    # Claimed by one worker, which is sending it now (or died doing so: reclaimed later).
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class Notification(models.Model):
    """One message to one patient (or one staff member) on one channel.

    `subject_key` names what the message is about, so the same fact never makes two messages:
    a session (and its start time) for a reminder, "series:<id>:after:<session id>" for a
    next-session nudge, the treated session for the aftercare check-in, "session:<id>" for a
    screening that will have lapsed, "lot:<id>" for a recall. The patient is part of the key
    because one recalled lot concerns many patients; for every other kind the subject already
    belongs to exactly one patient. A message to staff (`staff` set instead of `patient`: a
    recall notice to each admin) is keyed by the staff member the same way.
    """

    id = models.UUIDField(primary_key=True, default=time_ordered_uuid, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="notifications", null=True, blank=True
    )
    staff = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="notifications", null=True, blank=True
    )
    session = models.ForeignKey(
        "scheduling.Session",
        on_delete=models.PROTECT,
        related_name="notifications",
        null=True,
        blank=True,
    )
    kind = models.CharField(max_length=32, choices=NotificationKind.choices)
    subject_key = models.CharField(max_length=200)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    status = models.CharField(
        max_length=8, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    # Not before this instant (the reminder lead time, a retry's backoff, daytime for nudges).
    scheduled_for = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # The worker process that claimed the row (clinic/liveness.py); "" when it keeps no heartbeat.
    claimed_by = models.CharField(max_length=100, blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
    # Why the last attempt failed or why the row was skipped; never message text.
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-scheduled_for", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject_key", "channel", "patient"],
                name="scheduling_notification_once",
            ),
            models.UniqueConstraint(
                fields=["kind", "subject_key", "channel", "staff"],
                condition=models.Q(staff__isnull=False),
                name="scheduling_notification_once_to_staff",
            ),
            # To a patient or to a staff member: exactly one recipient.
            models.CheckConstraint(
                name="scheduling_notification_one_recipient",
                condition=models.Q(patient__isnull=False, staff__isnull=True)
                | models.Q(patient__isnull=True, staff__isnull=False),
            ),
            models.CheckConstraint(
                name="scheduling_notification_sent_has_sent_at",
                condition=~models.Q(status=NotificationStatus.SENT)
                | models.Q(sent_at__isnull=False),
            ),
            models.CheckConstraint(
                name="scheduling_notification_sending_has_claim",
                condition=~models.Q(status=NotificationStatus.SENDING)
                | models.Q(claimed_at__isnull=False),
            ),
        ]
        indexes = [
            # The sender: due pending rows, oldest first.
            models.Index(
                fields=["status", "scheduled_for"],
                name="scheduling_notification_due",
                condition=models.Q(status=NotificationStatus.PENDING),
            ),
            # The reclaim of rows whose sender died.
            models.Index(
                fields=["claimed_at"],
                name="scheduling_notification_claim",
                condition=models.Q(status=NotificationStatus.SENDING),
            ),
            # The API list: one clinic's rows, newest first.
            models.Index(
                fields=["clinic", "-scheduled_for", "-id"], name="scheduling_notification_list"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.channel} to {self.patient_id or self.staff_id}: {self.status}"


class InboundMessage(models.Model):
    """One SMS reply, as received and as handled (scheduling.notifications.inbound).

    One row per clinic whose patients have the sender's phone (a phone shared across clinics
    is recorded in each), or one without a clinic when nobody has it (the back office's).
    The provider's `message_id` is handled once: the constraints refuse a second row.
    """

    id = models.UUIDField(primary_key=True, default=time_ordered_uuid, editable=False)
    clinic = models.ForeignKey(
        Clinic, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="inbound_messages", null=True, blank=True
    )
    session = models.ForeignKey(
        "scheduling.Session",
        on_delete=models.PROTECT,
        related_name="inbound_messages",
        null=True,
        blank=True,
    )
    message_id = models.CharField(max_length=100)
    # The phone it came from: E.164 when it is a valid number, else as the provider wrote it.
    sender = models.CharField(max_length=32)
    body = models.TextField(blank=True)
    action = models.CharField(max_length=24, choices=InboundAction.choices)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["message_id", "clinic"], name="scheduling_inboundmessage_once_per_clinic"
            ),
            models.UniqueConstraint(
                fields=["message_id"],
                condition=models.Q(clinic__isnull=True),
                name="scheduling_inboundmessage_once_unmatched",
            ),
            # A patient's message is recorded in the patient's clinic.
            models.CheckConstraint(
                name="scheduling_inboundmessage_patient_has_clinic",
                condition=models.Q(patient__isnull=True) | models.Q(clinic__isnull=False),
            ),
        ]
        indexes = [
            models.Index(fields=["clinic", "-received_at", "-id"], name="scheduling_inbound_list"),
        ]

    def __str__(self) -> str:
        return f"SMS {self.message_id} from {self.sender}: {self.action}"


class ScanLease(models.Model):
    """Who runs the creating part of the beat's scan, until when (scheduling.notifications.scans).

    A lease row rather than a session-level advisory lock: it is taken and given back by single
    statements, each its own transaction, so it holds behind a pooler in transaction mode (a
    session lock taken through one server connection and released through another would stay
    held), and a scan that dies leaves it to lapse at `held_until`.
    """

    name = models.CharField(max_length=40, primary_key=True)
    holder = models.CharField(max_length=64)
    held_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder} until {self.held_until}"
