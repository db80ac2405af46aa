"""Shared set-up for the notification tests: a clinic in New York, a screened patient with a
series, sessions at chosen local times, and empty message outboxes."""

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.core import mail

from clinic.models import Clinic, Role, User
from patients.models import Patient
from scheduling import channels
from scheduling.models import Series, Session, SessionStatus
from tests.factories import PatientFactory, ScreeningFactory, SeriesFactory, SessionFactory


@pytest.fixture(autouse=True)
def _empty_outboxes():
    mail.outbox = []
    channels.outbox.clear()
    yield
    channels.outbox.clear()


@pytest.fixture
def clinic(db) -> Clinic:
    return Clinic.objects.create(name="Bloom Skin Studio", timezone="America/New_York")


@pytest.fixture
def provider(clinic, make_user) -> User:
    return make_user(Role.PROVIDER, clinic)


@pytest.fixture
def make_patient(clinic, front_desk) -> Callable[..., Patient]:
    """A patient opted into email and SMS, with a clean screening taken `screened_on`."""

    def make(screened_on=None, **kwargs) -> Patient:
        kwargs.setdefault("first_name", "Ada")
        patient = PatientFactory(clinic=clinic, **kwargs)
        if screened_on is not None:
            ScreeningFactory(patient=patient, screened_by=front_desk, screened_on=screened_on)
        return patient

    return make


@pytest.fixture
def patient(make_patient) -> Patient:
    return make_patient()


@pytest.fixture
def series(patient, front_desk) -> Series:
    return SeriesFactory(patient=patient, created_by=front_desk, interval_days=30)


@pytest.fixture
def make_session(series, provider) -> Callable[..., Session]:
    """A session of the series starting at `starts_at` (aware), 60 minutes."""

    def make(starts_at: datetime, status: str = SessionStatus.BOOKED, **kwargs) -> Session:
        return SessionFactory(
            series=kwargs.pop("series", series),
            provider=provider,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=60),
            status=status,
            **kwargs,
        )

    return make
