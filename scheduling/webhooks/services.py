"""Every write of webhook endpoints and deliveries (besides emit and the sender): register,
delete, redeliver. Each owns its transaction and writes its audit event."""

from __future__ import annotations

import base64
import secrets

from django.db import transaction
from django.utils import timezone

from clinic import audit
from clinic.errors import InvalidInput, InvalidState
from clinic.models import User
from scheduling.webhooks import guard, outbox
from scheduling.webhooks.models import WebhookDelivery, WebhookEndpoint
from scheduling.webhooks.rules import (
    SECRET_BYTES,
    SECRET_PREFIX,
    WebhookDeliveryStatus,
    WebhookEventType,
)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def register_endpoint(*, actor: User, url: str, events: list[str]) -> WebhookEndpoint:
    """A new endpoint of the actor's clinic, with a fresh signing secret.

    The URL is checked (SSRF guard) before the transaction: resolving a name must not hold one
    open."""
    try:
        guard.check(url)
    except guard.RefusedURL as exc:
        raise InvalidInput({"url": [f"This URL may not be used: {exc}."]}) from exc
    wanted = set(events)
    if not wanted:
        raise InvalidInput({"events": ["Name at least one event type."]})
    ordered = [event for event in WebhookEventType.values if event in wanted]
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            clinic_id=actor.clinic_uuid,
            url=url,
            events=ordered,
            secret=new_secret(),
            created_by=actor,
        )
        audit.record(
            actor=actor,
            action="webhook.create",
            object_type="webhook",
            object_id=endpoint.id,
            detail={"events": ordered},
        )
    return endpoint


@transaction.atomic
def delete_endpoint(*, actor: User, endpoint: WebhookEndpoint) -> None:
    """Stop the endpoint: nothing more is written for it, and what is still to send is not
    sent (`failed`). Its row and its deliveries stay, as history."""
    now = timezone.now()
    deleted = WebhookEndpoint.objects.filter(pk=endpoint.pk, deleted_at__isnull=True).update(
        active=False, deleted_at=now
    )
    if not deleted:
        raise InvalidState("The webhook is already deleted.")
    stopped = WebhookDelivery.objects.filter(
        endpoint_id=endpoint.pk, status=WebhookDeliveryStatus.PENDING
    ).update(status=WebhookDeliveryStatus.FAILED, last_error="endpoint deleted")
    audit.record(
        actor=actor,
        action="webhook.delete",
        object_type="webhook",
        object_id=endpoint.pk,
        detail={"deliveries_stopped": stopped},
    )


@transaction.atomic
def redeliver(*, actor: User, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the same message again (same payload, same webhook-id), with a fresh round of
    tries. A delivery still pending is sent now; one being sent this moment is left to it."""
    now = timezone.now()
    if not WebhookEndpoint.objects.filter(pk=delivery.endpoint_id, active=True).exists():
        raise InvalidState("The webhook is deleted or inactive.")
    WebhookDelivery.objects.filter(
        pk=delivery.pk,
        status__in=[WebhookDeliveryStatus.DELIVERED, WebhookDeliveryStatus.FAILED],
    ).update(
        status=WebhookDeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        delivered_at=None,
        last_error="",
    )
    WebhookDelivery.objects.filter(
        pk=delivery.pk, status=WebhookDeliveryStatus.PENDING, next_attempt_at__gt=now
    ).update(next_attempt_at=now)
    audit.record(
        actor=actor,
        action="webhook_delivery.redeliver",
        object_type="webhook_delivery",
        object_id=delivery.pk,
        detail={"endpoint": str(delivery.endpoint_id), "event_type": delivery.event_type},
    )
    transaction.on_commit(lambda: outbox.publish([delivery.pk]))
    return WebhookDelivery.objects.get(pk=delivery.pk)
