"""Factories for the scheduling app. They write rows directly (no booking rules): tests that
exercise the rules go through the API or scheduling.services."""

from datetime import timedelta

import factory
from django.utils import timezone

from clinic.models import Role
from scheduling.models import Indication, Series, Session, SessionStatus
from tests.factories.clinic import UserFactory
from tests.factories.patients import PatientFactory


class SeriesFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Series

    patient = factory.SubFactory(PatientFactory)
    clinic = factory.SelfAttribute("patient.clinic")
    indication = Indication.ACNE_SCARS
    planned_sessions = 3
    interval_days = 30
    created_by = factory.SubFactory(UserFactory, clinic=factory.SelfAttribute("..clinic"))


class SessionFactory(factory.django.DjangoModelFactory):
    """A booked 60-minute session a week from now."""

    class Meta:
        model = Session

    series = factory.SubFactory(SeriesFactory)
    clinic = factory.SelfAttribute("series.clinic")
    patient = factory.SelfAttribute("series.patient")
    provider = factory.SubFactory(
        UserFactory, clinic=factory.SelfAttribute("..clinic"), role=Role.PROVIDER
    )
    room = None
    starts_at = factory.LazyFunction(
        lambda: (timezone.now() + timedelta(days=7)).replace(second=0, microsecond=0)
    )
    ends_at = factory.LazyAttribute(lambda s: s.starts_at + timedelta(minutes=60))
    status = SessionStatus.BOOKED
    created_by = factory.SelfAttribute("provider")
