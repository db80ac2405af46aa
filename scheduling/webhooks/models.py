"""Webhook endpoints and the delivery outbox.

A delivery row is the claim on one POST: written in the transaction of the change it tells
(scheduling.webhooks.outbox.emit), moved pending -> sending -> delivered by conditional
UPDATEs (scheduling.webhooks.sender). Its `message_id` is the Standard Webhooks `webhook-id`,
the same on every retry and redelivery. Registered by scheduling.models, which imports this
module.
"""

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from clinic.ids import time_ordered_uuid
from clinic.models import Clinic
from scheduling.webhooks.rules import (
    LAST_ERROR_MAX_LENGTH,
    URL_MAX_LENGTH,
    WebhookDeliveryStatus,
    WebhookEventType,
)


class WebhookEndpoint(models.Model):
    """A URL of one clinic that receives the events it subscribed to.

    The secret signs every delivery; the API shows it once, when the endpoint is registered.
    Deleting an endpoint keeps the row (its deliveries are history) but stops every delivery
    still to be sent.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    url = models.URLField(max_length=URL_MAX_LENGTH)
    events = ArrayField(models.CharField(max_length=32, choices=WebhookEventType.choices))
    active = models.BooleanField(default=True)
    secret = models.CharField(max_length=100)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                name="scheduling_webhookendpoint_events_not_empty", condition=~models.Q(events=[])
            ),
            models.CheckConstraint(
                name="scheduling_webhookendpoint_deleted_inactive",
                condition=models.Q(deleted_at__isnull=True) | models.Q(active=False),
            ),
        ]
        indexes = [
            # emit(): the clinic's live endpoints, looked up at every event.
            models.Index(
                fields=["clinic"],
                name="scheduling_webhook_live",
                condition=models.Q(active=True),
            ),
        ]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event to one endpoint: the outbox row and its sending state."""

    id = models.UUIDField(primary_key=True, default=time_ordered_uuid, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries"
    )
    event_type = models.CharField(max_length=32, choices=WebhookEventType.choices)
    # The exact JSON the receiver gets (ids only), serialised once so every retry signs the
    # same bytes.
    payload = models.TextField()
    message_id = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=WebhookDeliveryStatus.choices, default=WebhookDeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    # Why the last try failed (a timeout, a refused address); never the payload.
    last_error = models.CharField(max_length=LAST_ERROR_MAX_LENGTH, blank=True)
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["message_id"], name="scheduling_webhookdelivery_message_id_unique"
            ),
            models.CheckConstraint(
                name="scheduling_webhookdelivery_delivered_has_delivered_at",
                condition=~models.Q(status=WebhookDeliveryStatus.DELIVERED)
                | models.Q(delivered_at__isnull=False),
            ),
            models.CheckConstraint(
                name="scheduling_webhookdelivery_sending_has_claim",
                condition=~models.Q(status=WebhookDeliveryStatus.SENDING)
                | models.Q(claimed_at__isnull=False),
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="scheduling_delivery_due",
                condition=models.Q(status=WebhookDeliveryStatus.PENDING),
            ),
            models.Index(
                fields=["claimed_at"],
                name="scheduling_delivery_claim",
                condition=models.Q(status=WebhookDeliveryStatus.SENDING),
            ),
            models.Index(
                fields=["endpoint", "-created_at", "-id"], name="scheduling_delivery_list"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} to {self.endpoint_id}: {self.status}"
