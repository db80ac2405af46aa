"""The audit chain is sealed once per transaction and clinic (migration clinic/0007): the first
seal call of a transaction chains every event the transaction wrote for that clinic, in the
order written, and the later calls find their rows sealed. These pin the cases that sealing in
one go could get wrong: savepoints, a rolled-back savepoint, two clinics interleaved, and
events written after an earlier seal in the same transaction."""

import pytest
from django.db import connection, transaction

from clinic import audit
from clinic.models import AuditEvent
from tests.audit.conftest import seal


def chain(clinic_id) -> list[tuple[int, str]]:
    return list(
        AuditEvent.objects.filter(clinic_id=clinic_id)
        .order_by("sequence")
        .values_list("sequence", "object_id")
    )


def write(actor, *object_ids: str) -> None:
    for object_id in object_ids:
        audit.record(actor=actor, action="patient.read", object_type="patient", object_id=object_id)


@pytest.mark.django_db
def test_events_of_savepoints_are_chained_in_order_and_a_rolled_back_one_leaves_no_gap(admin):
    write(admin, "1")
    with transaction.atomic():
        write(admin, "2")
        with transaction.atomic():
            write(admin, "3")
    try:
        with transaction.atomic():
            write(admin, "gone")
            raise RuntimeError
    except RuntimeError:
        pass
    audit.record_reads(
        actor=admin, action="patient.list", object_type="patient", objects=[("4", None)]
    )
    seal()

    assert chain(admin.clinic_id) == [(1, "1"), (2, "2"), (3, "3"), (4, "4")]
    assert [r.broken for r in audit.verify(admin.clinic_id)] == [None, None]


@pytest.mark.django_db
def test_two_clinics_written_in_turn_make_two_chains(admin, other_clinic, make_user):
    other_admin = make_user("admin", other_clinic)
    write(admin, "a1")
    write(other_admin, "b1")
    write(admin, "a2")
    write(other_admin, "b2")
    seal()

    assert chain(admin.clinic_id) == [(1, "a1"), (2, "a2")]
    assert chain(other_clinic.id) == [(1, "b1"), (2, "b2")]
    assert [r.broken for r in audit.verify(admin.clinic_id)] == [None, None]
    assert [r.broken for r in audit.verify(other_clinic.id)] == [None, None]


@pytest.mark.django_db
def test_events_written_after_a_seal_in_the_same_transaction_continue_the_chain(admin):
    write(admin, "1", "2")
    seal()
    write(admin, "3")
    audit.record_reads(
        actor=admin,
        action="patient.list",
        object_type="patient",
        objects=[("4", None), ("5", None)],
    )
    seal()

    assert chain(admin.clinic_id) == [(1, "1"), (2, "2"), (3, "3"), (4, "4"), (5, "5")]
    assert [r.broken for r in audit.verify(admin.clinic_id)] == [None, None]


@pytest.mark.django_db
def test_the_clinicless_chain_is_sealed_the_same_way(db):
    for label in ("nobody", "someone"):
        audit.record(actor=None, actor_label=label, action="auth.login", outcome="failed")
    seal()

    assert list(
        AuditEvent.objects.filter(clinic_id=None)
        .order_by("sequence")
        .values_list("sequence", "actor_label")
    ) == [(1, "nobody"), (2, "someone")]
    assert audit.verify_chain(audit.registered_chains()[0], None).broken is None


@pytest.mark.django_db
def test_an_unsealed_event_is_found_through_the_small_index(admin):
    """The first seal call finds the transaction's events through the partial index of unsealed
    rows, not by reading the clinic's whole trail."""
    write(admin, "1")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT * FROM clinic_auditevent WHERE hash IS NULL"
            " AND written_in = pg_current_xact_id() AND clinic_id IS NOT DISTINCT FROM %s"
            " ORDER BY written_order",
            [admin.clinic_id],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan using clinic_auditevent_unsealed on clinic_auditevent" in plan
