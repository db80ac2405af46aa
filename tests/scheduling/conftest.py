"""Shared set-up for the scheduling tests: an eligible patient, a series, a provider, a room,
and `at()` for times in the clinic's own zone."""

from collections.abc import Callable
from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone

from clinic.models import Clinic, Role, Room, User
from patients.models import Patient
from scheduling.models import Series
from tests.factories import PatientFactory, RoomFactory, ScreeningFactory, SeriesFactory


@pytest.fixture
def at(clinic: Clinic) -> Callable[..., datetime]:
    """at(days, hour=10, minute=0): that local time `days` days from the clinic's today."""

    def make(days: int, hour: int = 10, minute: int = 0) -> datetime:
        today = timezone.localdate(timezone=clinic.zone)
        return datetime.combine(today + timedelta(days=days), time(hour, minute), clinic.zone)

    return make


@pytest.fixture
def make_patient(clinic: Clinic, front_desk: User) -> Callable[..., Patient]:
    """A patient with a clean screening taken today (valid 90 days)."""

    def make(**kwargs) -> Patient:
        patient = PatientFactory(clinic=clinic, **kwargs)
        ScreeningFactory(
            patient=patient,
            screened_by=front_desk,
            screened_on=timezone.localdate(timezone=clinic.zone),
        )
        return patient

    return make


@pytest.fixture
def patient(make_patient) -> Patient:
    return make_patient()


@pytest.fixture
def make_series(patient: Patient, front_desk: User) -> Callable[..., Series]:
    def make(**kwargs) -> Series:
        kwargs.setdefault("patient", patient)
        return SeriesFactory(created_by=front_desk, **kwargs)

    return make


@pytest.fixture
def series(make_series) -> Series:
    return make_series()


@pytest.fixture
def room(clinic: Clinic) -> Room:
    return RoomFactory(clinic=clinic)


@pytest.fixture
def make_provider(make_user, clinic: Clinic) -> Callable[[], User]:
    return lambda: make_user(Role.PROVIDER, clinic)
