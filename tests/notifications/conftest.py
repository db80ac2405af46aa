"""Set-up of the notification tests alone (the clinic, its staff and the private broker are the
suite's, tests/conftest.py): a message recipient (a patient, not screened unless asked), their
series, booked sessions at chosen local times, and empty message outboxes."""

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.core import mail

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
def make_recipient(clinic, front_desk) -> Callable[..., Patient]:
    """A patient called Ada, opted into email and SMS; with a clean screening taken
    `screened_on` if given, else not screened."""

    def make(screened_on=None, **kwargs) -> Patient:
        kwargs.setdefault("first_name", "Ada")
        patient = PatientFactory(clinic=clinic, **kwargs)
        if screened_on is not None:
            ScreeningFactory(patient=patient, screened_by=front_desk, screened_on=screened_on)
        return patient

    return make


@pytest.fixture
def recipient(make_recipient) -> Patient:
    return make_recipient()


@pytest.fixture
def recipient_series(recipient, front_desk) -> Series:
    return SeriesFactory(patient=recipient, created_by=front_desk, interval_days=30)


@pytest.fixture
def make_booked_session(recipient_series, provider) -> Callable[..., Session]:
    """A session of the recipient's series (or of `series`) starting at `starts_at` (aware),
    60 minutes, booked unless `status` says otherwise."""

    def make(starts_at: datetime, status: str = SessionStatus.BOOKED, **kwargs) -> Session:
        return SessionFactory(
            series=kwargs.pop("series", recipient_series),
            provider=provider,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=60),
            status=status,
            **kwargs,
        )

    return make
