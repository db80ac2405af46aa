"""Fixtures shared by the tests of several apps, each defined here once. An app's own conftest
keeps only fixtures no other conftest defines; tests/test_fixtures_defined_once.py checks it."""

import base64
import json
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.test import override_settings
from knox.models import AuthToken
from rest_framework.test import APIClient

from clinic.models import Clinic, Role, User
from tests.factories import ClinicFactory, UserFactory


@pytest.fixture(autouse=True)
def _clean_broker():
    """Each test starts with an empty broker database (a Redis db of the suite's own)."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield
    client.flushdb()


@pytest.fixture
def clinic(db) -> Clinic:
    """The clinic the tests work in: Bloom Skin Studio, in New York (its name is in the texts
    of the messages it sends)."""
    return ClinicFactory(name="Bloom Skin Studio", timezone="America/New_York")


@pytest.fixture
def other_clinic(db) -> Clinic:
    return ClinicFactory(name="Elsewhere Aesthetics")


@pytest.fixture
def make_user(db) -> Callable[..., User]:
    def make(role: str = Role.FRONT_DESK, clinic: Clinic | None = None, **kwargs) -> User:
        if clinic is not None:
            kwargs["clinic"] = clinic
        return UserFactory(role=role, **kwargs)

    return make


@pytest.fixture
def api() -> Callable[[User | None], APIClient]:
    """An API client, signed in with a real bearer token when given a user."""

    def make(user: User | None = None) -> APIClient:
        client = APIClient()
        if user is not None:
            _instance, token = AuthToken.objects.create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return make


@pytest.fixture
def admin(clinic, make_user) -> User:
    return make_user(Role.ADMIN, clinic)


@pytest.fixture
def front_desk(clinic, make_user) -> User:
    return make_user(Role.FRONT_DESK, clinic)


@pytest.fixture
def provider(clinic, make_user) -> User:
    return make_user(Role.PROVIDER, clinic)


@pytest.fixture
def auditor(clinic, make_user) -> User:
    return make_user(Role.AUDITOR, clinic)


@pytest.fixture
def staff_by_role(admin, front_desk, provider, auditor) -> dict[str, User]:
    return {
        Role.ADMIN: admin,
        Role.FRONT_DESK: front_desk,
        Role.PROVIDER: provider,
        Role.AUDITOR: auditor,
    }


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
def private_broker() -> Iterator[PrivateBroker]:
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
def work_dir() -> Iterator[Path]:
    """A directory of this test's own for the workers' logs and the delivery log. Not pytest's
    tmp_path: other pytest sessions of the same user prune those numbered directories."""
    with tempfile.TemporaryDirectory(prefix="notify-worker-test-") as path:
        yield Path(path)
