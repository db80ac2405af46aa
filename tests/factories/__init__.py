"""factory_boy factories, one module per app; import from here."""

from tests.factories.clinic import (
    PASSWORD,
    ClinicFactory,
    HandpieceFactory,
    RoomFactory,
    UserFactory,
)

__all__ = ["PASSWORD", "ClinicFactory", "HandpieceFactory", "RoomFactory", "UserFactory"]
