"""Audit events are written by one plain INSERT (clinic.audit._insert), not the ORM: it writes
every column the model has, as the ORM would have written it, in the order given."""

import re
import uuid
from datetime import date
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
    written = re.search(r"\(([^)]*)\) VALUES", audit._INSERT).group(1)
    columns = [name.strip() for name in written.split(",")]
    model = [f.column for f in AuditEvent._meta.concrete_fields if f.name not in CHAINED]
    assert sorted(columns) == sorted(model)
    assert audit._ROW.count("%s") == len(columns)


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
    (insert,) = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("INSERT")]
    positions = [insert.index(str(object_id)) for object_id, _ in objects]
    assert positions == sorted(positions)  # rows in the order read: the chain's order
    written = AuditEvent.objects.filter(action="patient.read")
    assert sorted(e.object_id for e in written) == sorted(str(o) for o, _ in objects)
    assert {e.patient_id for e in written} == {p for _, p in objects}


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
    assert inserts(captured)[0].index(str(first.pk.hex)) < inserts(captured)[0].index(
        str(second.pk.hex)
    )
    assert set(AuditEvent.objects.values_list("action", flat=True)) == {"one", "two"}


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
    (audit_insert,) = [sql for sql in inserts(captured) if "clinic_auditevent" in sql]
    # In the order the service recorded them: the session completes, then the record.
    assert audit_insert.index("'session.complete'") < audit_insert.index("'treatment.record'")
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
