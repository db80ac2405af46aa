"""Tamper evidence: audit events and treatment records form one hash chain per clinic, built at
commit, and `verify_audit` names the first row altered behind the application's back."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from clinic import audit
from clinic.models import AuditEvent, AuditOutcome, Role
from scheduling.models import Session
from tests.audit.conftest import seal
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.factories import (
    PatientFactory,
    ScreeningFactory,
    SeriesFactory,
    SessionFactory,
    UserFactory,
)
from tests.factories.scheduling import checked_in_fields, starts_today
from treatments import services as treatment_services
from treatments.integrity import TREATMENT_CHAIN, record_canonical
from treatments.models import TreatmentRecord


def audit_chain(clinic_id) -> list[tuple[int, str, str, str]]:
    return list(
        AuditEvent.objects.filter(clinic_id=clinic_id)
        .order_by("sequence")
        .values_list("sequence", "previous_hash", "hash", "action")
    )


def run_verify(*args: str) -> tuple[str, str | None]:
    """verify_audit's output, and its error message when it exits non-zero."""
    from io import StringIO

    out = StringIO()
    try:
        call_command("verify_audit", *args, stdout=out)
    except CommandError as exc:
        assert exc.returncode == 1
        return out.getvalue(), str(exc)
    return out.getvalue(), None


def sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


@pytest.mark.django_db
def test_events_are_chained_in_the_order_they_were_written(admin, clinic):
    audit.record(actor=admin, action="first", object_type="patient", object_id="1")
    audit.record_reads(
        actor=admin,
        action="patient.list",
        object_type="patient",
        objects=[(f"p{n}", None) for n in range(5)],
    )
    audit.record(actor=admin, action="last", object_type="patient", object_id="2")
    assert AuditEvent.objects.filter(hash__isnull=False).count() == 0  # not before commit
    seal()

    chain = audit_chain(clinic.id)
    assert [(s, a) for s, _p, _h, a in chain] == [
        (1, "first"),
        *[(n, "patient.list") for n in range(2, 7)],
        (7, "last"),
    ]
    assert [str(e.object_id) for e in AuditEvent.objects.order_by("sequence")] == [
        "1", "p0", "p1", "p2", "p3", "p4", "2",
    ]  # fmt: skip
    previous = audit.GENESIS_HASH
    for event in AuditEvent.objects.filter(clinic=clinic).order_by("sequence"):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT clinic_auditevent_canonical(e) FROM clinic_auditevent e WHERE id = %s",
                [event.id],
            )
            (canonical,) = cursor.fetchone()
        assert event.previous_hash == previous
        assert event.hash == audit.chain_hash(previous, canonical)
        previous = event.hash
    assert [r.broken for r in audit.verify(clinic.id)] == [None, None]


@pytest.mark.django_db
def test_python_canonical_text_is_postgresqls(admin, clinic, lot_a1, make_record):
    """The verifier re-computes the canonical text itself; it must be byte-for-byte the text
    the trigger hashed, whatever the content."""
    tricky = 'Zoë "quoted" \\ back\tslash\nnew line \x01 ✓ 𝄞'
    event = audit.record(
        actor=admin,
        action="patient.update",
        object_type="patient",
        object_id="x",
        actor_label=tricky,
        detail={
            "fields": ["first_name", tricky],
            "depth": Decimal("2.50"),
            "ratio": 2.5,
            "big": 10**20,
            "nested": {"b": [], "aa": {}, "ccc": None, "é": True, "": False},
        },
    )
    record = make_record(
        timezone.now(), lot=lot_a1, notes=tricky, depths=[("neck", "2.50"), ("chin", "0.25")]
    )
    seal()

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT clinic_auditevent_canonical(e) FROM clinic_auditevent e WHERE id = %s",
            [event.id],
        )
        (audit_text,) = cursor.fetchone()
        cursor.execute(
            "SELECT treatments_treatmentrecord_canonical(r)"
            " FROM treatments_treatmentrecord r WHERE id = %s",
            [record.id],
        )
        (record_text,) = cursor.fetchone()
    (audit_row,) = [r for r in audit._audit_rows(clinic.id) if r.id == str(event.id)]
    (record_row,) = list(TREATMENT_CHAIN.rows(clinic.id))
    assert audit_row.canonical == audit_text
    assert record_row.canonical == record_text
    assert '"depths": [["chin", "0.25"], ["neck", "2.50"]]' in record_text
    assert [r.broken for r in audit.verify(clinic.id)] == [None, None]
    # The spec also takes Python values (as the benchmark's fill does).
    columns = TreatmentRecord.objects.filter(pk=record.id).values_list(
        "id", "clinic_id", "session_id", "patient_id", "provider_id", "tip_lot_id", "lot_number",
        "lot_expires_on", "handpiece_id", "handpiece_serial", "performed_at", "notes",
        "depth_override_reason", "recorded_at",
    ).get()  # fmt: skip
    depths = [["chin", "0.25"], ["neck", "2.50"]]
    assert record_canonical((*columns, depths), sequence=1) == record_text


@pytest.mark.django_db
def test_the_audit_trail_is_still_append_only(admin):
    event = audit.record(actor=admin, action="patient.read", object_type="patient")
    # Not chained yet (no commit): even then, a plain UPDATE may not fill the chain in.
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        sql("UPDATE clinic_auditevent SET hash = repeat('a', 64) WHERE id = %s", [event.id])
    seal()
    for statement in (
        "UPDATE clinic_auditevent SET hash = repeat('a', 64) WHERE id = %s",
        "UPDATE clinic_auditevent SET outcome = 'denied' WHERE id = %s",
        "DELETE FROM clinic_auditevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            sql(statement, [event.id])


@pytest.mark.django_db(transaction=True)
def test_verify_audit_names_an_altered_treatment_record(clinic, lot_a1, make_record, handpiece):
    now = timezone.now()
    records = [
        make_record(now - timedelta(days=n), lot=lot_a1, handpiece=handpiece) for n in range(4)
    ]
    assert list(TreatmentRecord.objects.order_by("sequence").values_list("id", "sequence")) == [
        (record.id, n) for n, record in enumerate(records, start=1)
    ]
    output, error = run_verify()
    assert error is None
    assert f"ok      treatments_treatmentrecord clinic={clinic.id}: 4 linked" in output

    # Behind the application's back: a depth changed in SQL, then the notes of record 2.
    sql(
        "UPDATE treatments_treatmentdepth SET depth_mm = 0.25 WHERE record_id = %s"
        " AND area = 'cheeks'",
        [records[2].id],
    )
    sql("UPDATE treatments_treatmentrecord SET notes = 'Fine.' WHERE id = %s", [records[1].id])
    output, error = run_verify("--clinic", str(clinic.id))
    broken = (
        f"treatments_treatmentrecord id={records[1].id} sequence=2: hash does not match the "
        "row's content: the row was altered"
    )
    assert error == f"Broken hash chain: {broken}"
    assert output.splitlines() == [
        f"ok      clinic_auditevent clinic={clinic.id}: 0 linked",
        f"BROKEN  treatments_treatmentrecord clinic={clinic.id}: first broken link {broken}"
        " (1 linked before it)",
    ]

    sql(
        "UPDATE treatments_treatmentrecord SET notes = %s WHERE id = %s",
        [records[1].notes, records[1].id],
    )
    _output, error = run_verify()
    assert error == (
        f"Broken hash chain: treatments_treatmentrecord id={records[2].id} sequence=3: hash does "
        "not match the row's content: the row was altered"
    )


@pytest.mark.django_db(transaction=True)
def test_verify_audit_names_an_altered_audit_event(clinic, admin, other_clinic, make_user):
    for n in range(5):
        audit.record(actor=admin, action="patient.read", object_type="patient", object_id=n)
    other_admin = make_user("admin", other_clinic)
    audit.record(actor=other_admin, action="patient.read", object_type="patient")
    third = AuditEvent.objects.get(clinic=clinic, sequence=3)

    # A superuser turns the append-only trigger off, edits, and turns it back on.
    sql("ALTER TABLE clinic_auditevent DISABLE TRIGGER clinic_auditevent_append_only")
    try:
        sql("UPDATE clinic_auditevent SET outcome = 'denied' WHERE id = %s", [third.id])
    finally:
        sql("ALTER TABLE clinic_auditevent ENABLE TRIGGER clinic_auditevent_append_only")

    output, error = run_verify()
    broken = (
        f"clinic_auditevent id={third.id} sequence=3: hash does not match the row's content: "
        "the row was altered"
    )
    assert error == f"Broken hash chain: {broken}"
    assert f"BROKEN  clinic_auditevent clinic={clinic.id}: first broken link {broken}" in output
    assert f"ok      clinic_auditevent clinic={other_clinic.id}: 1 linked" in output

    # Deleting a row (and re-linking nothing) is found too: the next one is out of sequence.
    fourth = AuditEvent.objects.get(clinic=clinic, sequence=4)
    sql("ALTER TABLE clinic_auditevent DISABLE TRIGGER clinic_auditevent_append_only")
    try:
        sql("UPDATE clinic_auditevent SET outcome = 'success' WHERE id = %s", [third.id])
        sql("DELETE FROM clinic_auditevent WHERE id = %s", [fourth.id])
    finally:
        sql("ALTER TABLE clinic_auditevent ENABLE TRIGGER clinic_auditevent_append_only")
    fifth = AuditEvent.objects.get(clinic=clinic, sequence=5)
    _output, error = run_verify("--clinic", str(clinic.id))
    assert error == (
        f"Broken hash chain: clinic_auditevent id={fifth.id} sequence=5: sequence 5 where 4 was "
        "expected: a row is missing or was renumbered"
    )


@pytest.mark.django_db
def test_verify_audit_refuses_an_unknown_clinic():
    with pytest.raises(CommandError, match="No clinic"):
        call_command("verify_audit", "--clinic", str(uuid.uuid4()))


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_writers_make_one_unbroken_chain(
    clinic, admin, provider, front_desk, lot_a1
):
    """Twenty threads, each on its own connection, write events, bulk reads and a treatment
    (the service: a record, session and series events) at once. One chain each, no fork."""
    sessions = []
    starts_at = next(starts_today(clinic))
    for _ in range(20):
        patient = PatientFactory(clinic=clinic)
        ScreeningFactory(
            patient=patient,
            screened_by=front_desk,
            screened_on=timezone.localdate(timezone=clinic.zone),
        )
        series = SeriesFactory(patient=patient, created_by=front_desk)
        # One provider each: twenty hour-long sessions in the chair now, on the clinic's today.
        sessions.append(
            SessionFactory(
                series=series,
                provider=UserFactory(clinic=clinic, role=Role.PROVIDER),
                starts_at=starts_at,
                ends_at=starts_at + timedelta(hours=1),
                **checked_in_fields(front_desk),
                created_by=front_desk,
            )
        )
    start = threading.Barrier(20)

    def writer(session: Session) -> None:
        try:
            start.wait(timeout=30)
            for n in range(3):
                with transaction.atomic():
                    audit.record(actor=admin, action="patient.update", object_type="patient")
                    audit.record_reads(
                        actor=admin,
                        action="patient.list",
                        object_type="patient",
                        objects=[(f"{session.id}-{n}-{k}", None) for k in range(4)],
                    )
            treatment_services.record_treatment(
                actor=provider,
                session=session,
                tip_lot=lot_a1,
                depths=[("cheeks", Decimal("1.00"))],
            )
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        for future in [pool.submit(writer, session) for session in sessions]:
            future.result(timeout=120)

    # 20 writers x (3 x (1 + 4) events + session.complete + treatment.record) = 340 events.
    events = audit_chain(clinic.id)
    assert [sequence for sequence, *_ in events] == list(range(1, 341))
    assert [previous for _s, previous, _h, _a in events[1:]] == [h for _s, _p, h, _a in events[:-1]]
    records = list(TreatmentRecord.objects.order_by("sequence").values_list("sequence", flat=True))
    assert records == list(range(1, 21))
    reports = list(audit.verify(clinic.id))
    assert [(r.table, r.length, r.broken) for r in reports] == [
        ("clinic_auditevent", 340, None),
        ("treatments_treatmentrecord", 20, None),
    ]


@pytest.mark.django_db(transaction=True)
def test_auditing_never_deadlocks_with_row_locks(clinic, admin, front_desk):
    """A screening audits, then locks the patient's sessions (refresh flags); a check-in locks
    a session, then audits. Had the chain lock been taken at insert, each would wait for the
    other. It is taken at commit, so both go through."""
    session = SessionFactory(
        series=SeriesFactory(patient=PatientFactory(clinic=clinic), created_by=front_desk)
    )
    locked, go = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def check_in() -> None:
        try:
            with transaction.atomic():
                Session.objects.select_for_update().get(pk=session.pk)
                locked.set()
                assert go.wait(timeout=30)
                audit.record(actor=front_desk, action="session.check_in", object_type="session")
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    def screening() -> None:
        try:
            assert locked.wait(timeout=30)
            with transaction.atomic():
                audit.record(actor=admin, action="screening.create", object_type="screening")
                Session.objects.select_for_update().get(pk=session.pk)  # waits for check_in
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=check_in), threading.Thread(target=screening)]
    for thread in threads:
        thread.start()
    assert locked.wait(timeout=30)
    with connection.cursor() as cursor:  # until the screening waits for the session's row
        for _ in range(3000):
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                break
    go.set()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert [a for *_rest, a in audit_chain(clinic.id)] == ["session.check_in", "screening.create"]
    assert AuditEvent.objects.filter(outcome=AuditOutcome.SUCCESS).count() == 2
