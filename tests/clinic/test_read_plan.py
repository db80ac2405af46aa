"""The API's serializers write a model instance's columns by their read plan
(clinic.api.fields.FieldTemplateMixin): the same answer as DRF's own to_representation, field by
field, whatever the values (None, no microseconds, another time zone in force)."""

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from rest_framework import serializers

from clinic import audit
from clinic.api.audit_views import AuditEventSerializer
from clinic.api.fields import ROWS, DateTimeField, ModelSerializer, value_writer
from clinic.models import AuditEvent
from patients.api.serializers import PatientSerializer
from scheduling.api.serializers import SeriesSerializer, SessionSerializer
from scheduling.api.views import SeriesViewSet, SessionViewSet
from tests.factories import PatientFactory
from tests.factories.scheduling import SessionFactory
from tests.factories.treatments import TipLotFactory
from treatments.api.serializers import TipLotSerializer
from treatments.models import TipLot

KOLKATA = ZoneInfo("Asia/Kolkata")

pytestmark = pytest.mark.django_db


def drf(serializer: serializers.Serializer, instance) -> dict:
    """DRF's own answer: Serializer.to_representation, every field read and written by DRF."""
    return dict(serializers.Serializer.to_representation(serializer, instance))


def both(serializer_class, instance, **context) -> tuple[dict, dict]:
    ours = serializer_class(instance, context=context)
    return dict(ours.data), drf(serializer_class(context=context), instance)


def test_a_patient_as_drf_writes_it(clinic):
    patient = PatientFactory(
        clinic=clinic, email="", phone="", sms_opt_in=False, email_opt_in=False
    )
    archived = PatientFactory(clinic=clinic, archived_at=timezone.now())
    for instance in (patient, archived):
        ours, theirs = both(PatientSerializer, instance)
        assert ours == theirs
        assert list(ours) == list(theirs)  # the same order too
    assert ours["archived"] is True
    assert ours["created_at"].endswith("Z")


def test_audit_events_as_drf_writes_them(admin):
    audit.record(actor=admin, action="patient.read", object_type="patient", object_id="x")
    audit.record(actor=None, action="system.tick", clinic_id=admin.clinic_id, detail={"n": 1})
    events = list(AuditEvent.objects.filter(clinic_id=admin.clinic_id))
    assert len(events) >= 2
    for event in events:
        assert both(AuditEventSerializer, event)[0] == both(AuditEventSerializer, event)[1]


def test_series_and_sessions_as_drf_writes_them(clinic):
    session = SessionFactory(series__patient__clinic=clinic)
    series = SeriesViewSet.scoped_queryset(clinic.id).get(pk=session.series_id)
    read = SessionViewSet.scoped_queryset(clinic.id).get(pk=session.pk)
    ours, theirs = both(SeriesSerializer, series)
    assert ours == theirs
    ours, theirs = both(SessionSerializer, read)
    assert ours == theirs
    assert ours["room"] is None


def test_a_tip_lot_as_drf_writes_it(clinic):
    lot = TipLotFactory(clinic=clinic)
    ours, theirs = both(TipLotSerializer, lot, today=clinic.today())
    assert ours == theirs


class Stamps(ModelSerializer):
    """Timestamp and date columns, written by the API's fields and by DRF's own kinds."""

    plain_at = serializers.DateTimeField(source="received_at")
    formatted = serializers.DateTimeField(source="received_at", format="%Y-%m-%d %H:%M")
    in_kolkata = serializers.DateTimeField(source="received_at", default_timezone=KOLKATA)
    plain_on = serializers.DateField(source="expires_on")

    class Meta:
        model = TipLot
        fields = ["received_at", "recalled_at", "expires_on", "plain_at", "formatted"]
        fields += ["in_kolkata", "plain_on"]


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 12, 3, 10, 0, tzinfo=UTC),  # no microseconds: isoformat leaves them out
        datetime(2026, 12, 3, 10, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 6, 1, 23, 30, tzinfo=ZoneInfo("America/Chicago")),
    ],
)
@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Tokyo"])
def test_timestamps_as_drf_writes_them_in_the_time_zone_in_force(at, zone):
    lot = TipLot(received_at=at, recalled_at=None, expires_on=date(2027, 1, 31))
    with timezone.override(zone):
        ours = Stamps(lot).data
        theirs = drf(Stamps(), lot)
    assert dict(ours) == theirs
    assert ours["recalled_at"] is None
    assert ours["expires_on"] == "2027-01-31"
    if zone == "UTC":
        assert ours["received_at"].endswith("Z")
    else:
        assert ours["received_at"] == at.astimezone(ZoneInfo(zone)).isoformat()


def test_a_naive_timestamp_is_left_to_drf():
    naive = datetime(2026, 12, 3, 10, 0)  # noqa: DTZ001 - the case under test
    lot = TipLot(received_at=naive, expires_on=date(2027, 1, 31))
    assert dict(Stamps(lot).data) == drf(Stamps(), lot)


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_a_value_writer_writes_as_its_field_does(zone):
    at = datetime(2026, 12, 3, 10, 0, 0, 5, tzinfo=UTC)
    cases = [
        (DateTimeField(), at),
        (serializers.DateTimeField(format="%H:%M"), at),
        (serializers.CharField(), "x"),
        (serializers.JSONField(), {"a": [1]}),
        (serializers.DecimalField(max_digits=3, decimal_places=2), Decimal("1.5")),
    ]
    with timezone.override(zone):
        for field, value in cases:
            assert value_writer(field)(value) == field.to_representation(value), field


def test_a_row_of_columns_is_written_as_its_instance(admin):
    audit.record(actor=admin, action="patient.read", object_type="patient", object_id="x")
    audit.record(actor=None, action="system.tick", clinic_id=admin.clinic_id, detail={"n": 1})
    columns = AuditEventSerializer().columns()
    events = AuditEvent.objects.filter(clinic_id=admin.clinic_id).order_by("at")
    rows = list(events.values(*columns))
    assert len(rows) >= 2
    as_rows = AuditEventSerializer(rows, many=True, context={ROWS: True}).data
    assert as_rows == AuditEventSerializer(events, many=True).data


def test_a_dict_not_marked_as_rows_is_read_as_drf_reads_it():
    # As DRF's validated data would be: read field by field, no KeyError on what it lacks.
    given = {"action": "x"}
    assert dict(AuditEventSerializer(given).data) == drf(AuditEventSerializer(), given)


def test_a_serializer_with_a_computed_field_has_no_row_form():
    with pytest.raises(TypeError, match="archived"):
        PatientSerializer().columns()
