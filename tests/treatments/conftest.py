"""Set-up for treatment tests: a provider, a checked-in session of an eligible patient, and a
lot of cartridges."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from clinic.models import User
from scheduling.models import Session
from tests.factories import PatientFactory, ScreeningFactory
from tests.factories.scheduling import (
    SeriesFactory,
    SessionFactory,
    checked_in_fields,
    starts_today,
)
from tests.factories.treatments import TipLotFactory
from treatments.models import TipLot


@pytest.fixture
def make_session(clinic, provider: User, front_desk: User) -> Callable[..., Session]:
    """A checked-in session of an eligible patient on the clinic's today; the first started
    half an hour ago, each further one two hours before the last (one provider cannot be in two
    places; tests.factories.scheduling.starts_today). Checked in with a clear day-of
    attestation; `starts_at` (with `ends_at`) places it elsewhere."""
    starts = starts_today(clinic)

    def make(patient=None, **kwargs) -> Session:
        if patient is None:
            patient = PatientFactory(clinic=clinic)
            ScreeningFactory(
                patient=patient,
                screened_by=front_desk,
                screened_on=timezone.localdate(timezone=clinic.zone),
            )
        series = kwargs.pop("series", None) or SeriesFactory(patient=patient, created_by=front_desk)
        starts_at = kwargs.pop("starts_at", None) or next(starts)
        defaults = {
            "series": series,
            "provider": provider,
            "starts_at": starts_at,
            "ends_at": starts_at + timedelta(hours=1),
            **checked_in_fields(front_desk),
            "created_by": front_desk,
        }
        return SessionFactory(**{**defaults, **kwargs})

    return make


@pytest.fixture
def session(make_session) -> Session:
    return make_session()


@pytest.fixture
def lot(clinic, provider) -> TipLot:
    return TipLotFactory(clinic=clinic, received_by=provider, quantity_received=10)


def treatment_body(lot: TipLot, **overrides) -> dict:
    return {
        "tip_lot": str(lot.id),
        "depths": [
            {"area": "cheeks", "depth_mm": "1.25"},
            {"area": "forehead", "depth_mm": 0.5},
        ],
        "notes": "Tolerated well.",
        **overrides,
    }
