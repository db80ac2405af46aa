"""Set-up for the audit, integrity and export tests: treatment records written as rows (the
treatments tests cover how the service writes them), and `seal()` for tests that run inside one
never-committed transaction, where the commit-time chain triggers would otherwise never fire."""

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from clinic.models import Clinic, Role, User
from scheduling.models import Session, SessionStatus
from tests.factories import (
    HandpieceFactory,
    PatientFactory,
    ScreeningFactory,
    SeriesFactory,
    SessionFactory,
)
from tests.factories.scheduling import checked_in_fields, starts_today
from tests.factories.treatments import TipLotFactory
from treatments.models import TipLot, TreatmentDepth, TreatmentRecord

CHAIN_TRIGGERS = "clinic_auditevent_chain, treatments_treatmentrecord_chain"


def seal() -> None:
    """Fire the chain triggers queued so far, as COMMIT would, and keep later ones deferred."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET CONSTRAINTS {CHAIN_TRIGGERS} IMMEDIATE")
        cursor.execute(f"SET CONSTRAINTS {CHAIN_TRIGGERS} DEFERRED")


@pytest.fixture
def lot_a1(clinic: Clinic, provider: User) -> TipLot:
    """Lot LOT-A1 of GTIN 00812345000019, 1,000 cartridges, expiring in 300 days (the
    treatments tests' `lot` is a plain one of 10)."""
    return TipLotFactory(
        clinic=clinic,
        lot_number="LOT-A1",
        gtin="00812345000019",
        expires_on=timezone.localdate() + timedelta(days=300),
        received_by=provider,
        quantity_received=1000,
    )


@pytest.fixture
def make_record(clinic: Clinic, provider: User, front_desk: User) -> Callable[..., TreatmentRecord]:
    """make_record(performed_at, lot=..., patient=..., depths=[(area, "mm")], handpiece=...):
    a completed session and its treatment record. Sessions of one provider are 2 h apart,
    from 3 h ago backwards."""
    slots = itertools.count()

    def make(
        performed_at: datetime,
        *,
        lot: TipLot,
        patient=None,
        series=None,
        depths=(("cheeks", "1.25"), ("forehead", "0.50")),
        handpiece=None,
        performer: User | None = None,
        notes: str = "Tolerated well.",
        acknowledged_warnings: tuple[str, ...] = (),
    ) -> TreatmentRecord:
        # One transaction, like record_treatment: the record is chained with its depths.
        with transaction.atomic():
            return _make(
                performed_at,
                lot,
                patient,
                series,
                depths,
                handpiece,
                performer,
                notes,
                list(acknowledged_warnings),
            )

    def _make(
        performed_at, lot, patient, series, depths, handpiece, performer, notes, acknowledged
    ):
        performer = performer or provider
        patient = patient or (series.patient if series else PatientFactory(clinic=clinic))
        series = series or SeriesFactory(patient=patient, created_by=front_desk)
        starts_at = timezone.now().replace(microsecond=0) - timedelta(hours=2 * next(slots) + 3)
        session = SessionFactory(
            series=series,
            provider=performer,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=1),
            status=SessionStatus.COMPLETED,
            created_by=front_desk,
        )
        record = TreatmentRecord.objects.create(
            clinic=clinic,
            session=session,
            patient=patient,
            provider=performer,
            tip_lot=lot,
            lot_number=lot.lot_number,
            lot_expires_on=lot.expires_on,
            handpiece=handpiece,
            handpiece_serial=handpiece.serial_number if handpiece else "",
            performed_at=performed_at,
            notes=notes,
            acknowledged_warnings=acknowledged,
        )
        TreatmentDepth.objects.bulk_create(
            [TreatmentDepth(record=record, area=a, depth_mm=Decimal(d)) for a, d in depths]
        )
        return record

    return make


@pytest.fixture
def handpiece(clinic: Clinic):
    return HandpieceFactory(clinic=clinic, serial_number="SP-0042")


@pytest.fixture
def other_auditor(other_clinic: Clinic, make_user) -> User:
    return make_user(Role.AUDITOR, other_clinic)


@pytest.fixture
def session_to_treat(clinic: Clinic, provider: User, front_desk: User) -> Session:
    """A patient screened today, their session checked in now on the clinic's today, with
    `provider`: ready for record_treatment."""
    patient = PatientFactory(clinic=clinic)
    ScreeningFactory(
        patient=patient,
        screened_by=front_desk,
        screened_on=timezone.localdate(timezone=clinic.zone),
    )
    starts_at = next(starts_today(clinic))
    return SessionFactory(
        series=SeriesFactory(patient=patient, created_by=front_desk),
        provider=provider,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=1),
        **checked_in_fields(front_desk),
        created_by=front_desk,
    )
