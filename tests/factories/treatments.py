"""Factories for the treatments app."""

from datetime import timedelta

import factory
from django.utils import timezone

from tests.factories.clinic import ClinicFactory, UserFactory
from treatments.models import TipLot


class TipLotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TipLot

    clinic = factory.SubFactory(ClinicFactory)
    lot_number = factory.Sequence(lambda n: f"LOT{n:05d}")
    expires_on = factory.LazyFunction(lambda: timezone.localdate() + timedelta(days=365))
    quantity_received = 10
    received_by = factory.SubFactory(
        UserFactory, clinic=factory.SelfAttribute("..clinic"), role="provider"
    )
