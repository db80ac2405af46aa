"""Factories for webhook endpoints and deliveries (rows written directly, no guard)."""

import factory
from django.utils import timezone

from scheduling.webhooks import outbox
from scheduling.webhooks.models import WebhookDelivery, WebhookEndpoint
from scheduling.webhooks.rules import WebhookEventType
from scheduling.webhooks.services import new_secret
from tests.factories.clinic import ClinicFactory, UserFactory


class WebhookEndpointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookEndpoint

    clinic = factory.SubFactory(ClinicFactory)
    url = "https://hooks.example.com/skinpen"
    events = factory.LazyFunction(lambda: list(WebhookEventType.values))
    secret = factory.LazyFunction(new_secret)
    created_by = factory.SubFactory(
        UserFactory, clinic=factory.SelfAttribute("..clinic"), role="admin"
    )


class WebhookDeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookDelivery

    endpoint = factory.SubFactory(WebhookEndpointFactory)
    clinic = factory.SelfAttribute("endpoint.clinic")
    event_type = WebhookEventType.SESSION_BOOKED
    payload = factory.LazyAttribute(
        lambda d: outbox.payload_text(
            d.event_type, "2026-03-10T14:00:00Z", {"id": "x", "clinic": str(d.clinic.id)}
        )
    )
    message_id = factory.LazyFunction(outbox.new_message_id)
    next_attempt_at = factory.LazyFunction(timezone.now)
