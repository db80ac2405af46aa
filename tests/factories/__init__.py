"""factory_boy factories, one module per app; import from here."""

from tests.factories.clinic import (
    PASSWORD,
    ClinicFactory,
    HandpieceFactory,
    RoomFactory,
    UserFactory,
)
from tests.factories.patients import PatientFactory, ScreeningFactory
from tests.factories.scheduling import SeriesFactory, SessionFactory
from tests.factories.treatments import TipLotFactory

__all__ = [
    "PASSWORD",
    "ClinicFactory",
    "HandpieceFactory",
    "PatientFactory",
    "RoomFactory",
    "ScreeningFactory",
    "SeriesFactory",
    "SessionFactory",
    "TipLotFactory",
    "UserFactory",
]
