"""Shared set-up for the notification tests: a clinic in New York, a screened patient with a
series, sessions at chosen local times, and empty message outboxes."""

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
import redis
from django.conf import settings
from django.core import mail
from django.test import override_settings

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


@dataclass
class PrivateBroker:
    """A real Redis broker whose keys carry a prefix of this test's own."""

    url: str
    prefix: str
    client: redis.Redis

    def queued(self) -> list[tuple[str, dict]]:
        """(task name, kwargs) of every message waiting in the default queue, oldest first."""
        tasks = []
        for raw in reversed(self.client.lrange(f"{self.prefix}celery", 0, -1)):
            message = json.loads(raw)
            _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            tasks.append((message["headers"]["task"], kwargs))
        return tasks

    def waiting(self) -> int:
        return self.client.llen(f"{self.prefix}celery")


@pytest.fixture
def private_broker():
    """The broker, for this test alone: other runs sharing Redis (and their per-test flushes of
    the suite's database 15) cannot take or drop its messages."""
    url = "redis://127.0.0.1:6379/12"
    prefix = f"notify-test-{uuid.uuid4().hex[:12]}:"
    client = redis.Redis.from_url(url)
    options = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "global_keyprefix": prefix}
    with override_settings(CELERY_BROKER_URL=url, CELERY_BROKER_TRANSPORT_OPTIONS=options):
        yield PrivateBroker(url=url, prefix=prefix, client=client)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


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
