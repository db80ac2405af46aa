"""Factories for the scheduling app. They write rows directly (no booking rules): tests that
exercise the rules go through the API or scheduling.services."""

from collections.abc import Iterator
from datetime import datetime, timedelta

import factory
from django.utils import timezone

from clinic.models import Clinic, Role
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


def starts_today(clinic: Clinic, gap: timedelta = timedelta(hours=2)) -> Iterator[datetime]:
    """Start times of one provider's hour-long sessions on the clinic's current local day, for
    patients in the chair now: half an hour ago, then `gap` earlier each, and once the day's
    start is reached, later in the day. Treatment needs the session's own local day, so a test
    run just after local midnight must not get yesterday's times."""
    now = timezone.now().replace(microsecond=0)
    day_start, day_end = clinic.day_bounds(clinic.local_date(now))
    first = now - timedelta(minutes=30)
    at = first
    while at >= day_start:
        yield at
        at -= gap
    at = first + gap
    while at < day_end:
        yield at
        at += gap


# The day-of attestation's answers when nothing rules treatment out (POST /check-in/ body).
ATTESTATION = {
    "pregnant_or_nursing": False,
    "active_skin_infection": False,
    "open_wounds_in_area": False,
}


def checked_in_fields(by, at: datetime | None = None) -> dict:
    """The columns of a session checked in with a clear day-of attestation (for factories)."""
    at = at or timezone.now()
    return {
        "status": SessionStatus.CHECKED_IN,
        "checked_in_at": at,
        "attested_at": at,
        "attested_by": by,
        **{f"attested_{name}": answer for name, answer in ATTESTATION.items()},
    }
