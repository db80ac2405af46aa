"""Audit events are written by one plain INSERT (clinic.audit._insert), not the ORM: it writes
every column the model has, as the ORM would have written it, in the order given."""

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from clinic import audit
from clinic.models import AuditEvent, AuditOutcome
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from treatments import services as treatment_services

pytestmark = pytest.mark.django_db

# Filled in by PostgreSQL at commit (the chain), never by the insert.
CHAINED = {"sequence", "previous_hash", "hash"}


def test_the_insert_names_every_column_of_the_model_but_the_chain():
    model = [f.column for f in AuditEvent._meta.concrete_fields if f.name not in CHAINED]
    assert sorted(audit._COLUMNS) == sorted(model)


def written_order(**filters) -> list[AuditEvent]:
    """The events in the order the INSERT wrote them (the chain's order at commit: the
    `written_order` identity of migration clinic/0007, which the model does not show)."""
    events = AuditEvent.objects.filter(**filters).extra(
        select={"written": "written_order"}, order_by=["written"]
    )
    return list(events)


def test_a_recorded_event_reads_back_as_written(admin):
    patient_id = uuid.uuid4()
    event = audit.record(
        actor=admin,
        action="patient.update",
        object_type="patient",
        object_id=patient_id,
        patient_id=patient_id,
        detail={"fields": ["phone"], "on": date(2026, 12, 3), "depth": Decimal("1.25")},
    )
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.clinic_id, stored.actor_id, stored.actor_label) == (
        admin.clinic_id,
        admin.id,
        admin.username,
    )
    assert (stored.action, stored.object_type, stored.object_id, stored.patient_id) == (
        "patient.update",
        "patient",
        str(patient_id),
        patient_id,
    )
    assert stored.outcome == AuditOutcome.SUCCESS
    assert stored.at == event.at
    # Encoded as the model's own field encodes it (DjangoJSONEncoder).
    assert stored.detail == {"fields": ["phone"], "on": "2026-12-03", "depth": "1.25"}
    assert not event._state.adding


def test_a_page_of_reads_is_one_insert_in_the_order_read(admin):
    objects = [(uuid.uuid4(), uuid.uuid4()) for _ in range(5)]
    with CaptureQueriesContext(connection) as captured:
        audit.record_reads(
            actor=admin, action="patient.read", object_type="patient", objects=objects
        )
    assert len(inserts(captured)) == 1
    written = written_order(action="patient.read")
    # In the order read (the chain's order), each with its own patient.
    assert [(e.object_id, e.patient_id) for e in written] == [(str(o), p) for o, p in objects]
    assert {
        (e.clinic_id, e.actor_id, e.actor_label, e.object_type, e.outcome) for e in written
    } == {(admin.clinic_id, admin.id, admin.username, "patient", AuditOutcome.SUCCESS)}
    assert len({e.id for e in written}) == len(objects)
    assert [e.detail for e in written] == [{}] * len(objects)
    # Each its own moment, in the order read (the audit list's cursor pages on it).
    moments = [e.at for e in written]
    assert moments == sorted(moments) and len(set(moments)) == len(objects)
    assert moments[-1] - moments[0] == timedelta(microseconds=len(objects) - 1)


def test_a_read_of_objects_without_a_patient_writes_null_patients(admin):
    audit.record_reads(
        actor=admin,
        action="audit_event.list",
        object_type="tip_lot",
        objects=[(1, None), ("x", None)],
    )
    written = written_order(action="audit_event.list")
    assert [(e.object_id, e.patient_id) for e in written] == [("1", None), ("x", None)]


def test_nothing_to_record_writes_nothing(admin):
    with CaptureQueriesContext(connection) as captured:
        audit.record_reads(actor=admin, action="patient.read", object_type="patient", objects=[])
    assert captured.captured_queries == []


def inserts(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if q["sql"].startswith("INSERT")]


def test_a_batch_is_one_insert_at_its_end_in_the_order_recorded(admin):
    with CaptureQueriesContext(connection) as captured:
        with audit.batched():
            first = audit.record(actor=admin, action="one")
            with audit.batched():  # inner blocks add to the outer one
                second = audit.record(actor=admin, action="two")
            assert not AuditEvent.objects.filter(pk__in=[first.pk, second.pk]).exists()
        assert len(inserts(captured)) == 1
    assert [(e.pk, e.action) for e in written_order()] == [(first.pk, "one"), (second.pk, "two")]


def test_a_batch_that_fails_writes_nothing(admin):
    with pytest.raises(RuntimeError), audit.batched():
        audit.record(actor=admin, action="lost")
        raise RuntimeError("the service failed")
    assert not AuditEvent.objects.filter(action="lost").exists()
    # and the next record is written at once again
    audit.record(actor=admin, action="after")
    assert AuditEvent.objects.filter(action="after").exists()


def test_a_refusal_is_written_at_once_even_inside_a_batch(admin):
    with pytest.raises(RuntimeError), audit.batched():
        audit.record_refusal(
            actor=admin, action="treatment.record", code="x", object_type="session", object_id=1
        )
        raise RuntimeError
    assert AuditEvent.objects.filter(action="treatment.record", outcome="denied").exists()


def test_a_treatment_writes_its_events_in_one_insert(session_to_treat, provider, lot_a1):
    session = session_to_treat
    with CaptureQueriesContext(connection) as captured:
        treatment_services.record_treatment(
            actor=provider, session=session, tip_lot=lot_a1, depths=[("cheeks", Decimal("1.00"))]
        )
    assert len([sql for sql in inserts(captured) if "clinic_auditevent" in sql]) == 1
    # In the order the service recorded them: the session completes, then the record.
    actions = [e.action for e in written_order()]
    assert actions.index("session.complete") < actions.index("treatment.record")
    assert set(
        AuditEvent.objects.filter(object_id__in=[str(session.pk)]).values_list("action", flat=True)
    ) == {"session.complete"}
    assert AuditEvent.objects.filter(action="treatment.record").count() == 1


def test_an_event_inside_a_rolled_back_savepoint_is_not_written(admin):
    with audit.batched():
        audit.record(actor=admin, action="kept")
        try:
            with transaction.atomic():
                audit.record(actor=admin, action="undone")
                raise RuntimeError("the savepoint rolls back")
        except RuntimeError:
            pass
        audit.record(actor=admin, action="kept too")
    assert set(AuditEvent.objects.values_list("action", flat=True)) == {"kept", "kept too"}


def test_a_failed_inner_block_drops_only_its_own_events(admin):
    with audit.batched():
        audit.record(actor=admin, action="outer")
        with pytest.raises(RuntimeError), audit.batched():
            audit.record(actor=admin, action="inner")
            raise RuntimeError
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["outer"]


@pytest.mark.django_db(transaction=True)
def test_a_batch_outside_a_transaction_is_refused(admin):
    with pytest.raises(RuntimeError, match="inside the transaction"), audit.batched():
        pass


def test_ids_given_as_uuids_or_as_text_are_written_alike(admin):
    patient = uuid.uuid4()
    audit.record_reads(
        actor=admin,
        action="patient.read",
        object_type="patient",
        objects=[(1, patient), (2, str(patient)), (3, None)],
    )
    written = written_order(action="patient.read")
    assert [e.patient_id for e in written] == [patient, patient, None]


# --- Time-ordered ids ---------------------------------------------------------------------------


def _milliseconds(event_id: uuid.UUID) -> int:
    """The Unix milliseconds a UUIDv7 begins with (RFC 9562, 5.7)."""
    return event_id.int >> 80


def _database_milliseconds() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint")
        return cursor.fetchone()[0]


def test_every_event_id_is_a_uuid7_of_the_moment_it_was_written(admin):
    """Both ways an event is written: one event from Python's id, a page of reads with ids
    drawn by PostgreSQL (clinic_uuid7())."""
    before = _database_milliseconds()
    one = audit.record(actor=admin, action="patient.update", object_type="patient", object_id=1)
    audit.record_reads(
        actor=admin,
        action="patient.read",
        object_type="patient",
        objects=[(n, None) for n in range(50)],
    )
    after = _database_milliseconds()
    ids = [e.id for e in AuditEvent.objects.filter(actor=admin)]
    assert one.id in ids and len(ids) == 51
    assert {(i.version, i.variant) for i in ids} == {(7, uuid.RFC_4122)}
    # Python's clock and PostgreSQL's are the same machine's here.
    assert all(before - 20 <= _milliseconds(i) <= after + 20 for i in ids)
    assert len({i.int & ((1 << 62) - 1) for i in ids}) == 51  # random bits differ


def test_ids_grow_with_the_moment_they_are_drawn(admin):
    """Later writes sort after earlier ones (at millisecond grain): new rows of the primary
    key gather at its newest edge instead of on random pages."""
    drawn = []

    def next_millisecond():  # and then some: Python's and PostgreSQL's clocks may differ a little
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(0.02)")

    for n in range(3):
        audit.record_reads(
            actor=admin, action="patient.read", object_type="patient", objects=[(n, None)]
        )
        drawn.append(written_order(action="patient.read")[-1].id)
        next_millisecond()
        drawn.append(audit.record(actor=admin, action="x", object_type="y", object_id=n).id)
        next_millisecond()
    assert drawn == sorted(drawn)
    assert len(set(drawn)) == 6
