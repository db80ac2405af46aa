"""Factories for the patients app."""

from datetime import date, timedelta

import factory
from django.utils import timezone

from patients import rules
from patients.models import Patient, Screening
from tests.factories.clinic import ClinicFactory, UserFactory


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    clinic = factory.SubFactory(ClinicFactory)
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    date_of_birth = date(1990, 5, 17)
    email = factory.Sequence(lambda n: f"patient{n}@example.com")
    phone = factory.Sequence(lambda n: f"+1202555{n % 10000:04d}")
    fitzpatrick_type = 3
    sms_opt_in = True
    email_opt_in = True


class ScreeningFactory(factory.django.DjangoModelFactory):
    """A clean screening taken today (or on `screened_on`), valid for 90 days."""

    class Meta:
        model = Screening

    patient = factory.SubFactory(PatientFactory)
    clinic = factory.SelfAttribute("patient.clinic")
    screened_by = factory.SubFactory(UserFactory, clinic=factory.SelfAttribute("..clinic"))
    screened_on = factory.LazyFunction(lambda: timezone.localdate())
    screened_at = factory.LazyFunction(timezone.now)
    eligible = True
    contraindications = factory.LazyFunction(list)
    warnings = factory.LazyFunction(list)
    valid_until = factory.LazyAttribute(lambda s: s.screened_on + timedelta(days=90))
    washout_ends_on = None
    eligible_from = factory.LazyAttribute(
        lambda s: rules.minimum_age_reached_on(s.patient.date_of_birth)
    )
