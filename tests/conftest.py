from collections.abc import Callable

import pytest
import redis
from django.conf import settings
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
    return ClinicFactory(timezone="America/New_York")


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
