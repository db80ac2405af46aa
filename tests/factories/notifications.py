"""Factories for the notification outbox. Rows written directly: tests of how rows come to be
go through scheduling.notifications."""

import factory
from django.utils import timezone

from scheduling.notifications.models import (
    Channel,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from tests.factories.patients import PatientFactory


class NotificationFactory(factory.django.DjangoModelFactory):
    """A pending lot-recall email, due now."""

    class Meta:
        model = Notification

    patient = factory.SubFactory(PatientFactory)
    clinic = factory.SelfAttribute("patient.clinic")
    session = None
    kind = NotificationKind.LOT_RECALL
    subject_key = factory.Sequence(lambda n: f"lot:{n}")
    channel = Channel.EMAIL
    status = NotificationStatus.PENDING
    scheduled_for = factory.LazyFunction(timezone.now)
