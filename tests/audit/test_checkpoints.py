"""Signed checkpoints: a chain rewritten and re-hashed in SQL so that it is internally
consistent again is still named by `verify_audit`, because its head was signed earlier with a
key the database does not hold."""

import base64
import logging
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import override_settings

from clinic import audit, checkpoints
from clinic.models import AuditCheckpoint, AuditEvent
from clinic.tasks import write_audit_checkpoints
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)

OTHER_KEY, OTHER_PUBLIC = checkpoints.generate_key()


def run_verify(*args: str) -> tuple[str, str | None]:
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


def behind_the_back(*statements: str) -> None:
    """A superuser turns the append-only triggers off, runs SQL, and turns them back on."""
    sql("ALTER TABLE clinic_auditevent DISABLE TRIGGER clinic_auditevent_append_only")
    sql("ALTER TABLE clinic_auditcheckpoint DISABLE TRIGGER clinic_auditcheckpoint_append_only")
    try:
        for statement in statements:
            sql(statement)
    finally:
        sql("ALTER TABLE clinic_auditevent ENABLE TRIGGER clinic_auditevent_append_only")
        sql("ALTER TABLE clinic_auditcheckpoint ENABLE TRIGGER clinic_auditcheckpoint_append_only")


def rewrite_consistently(clinic_id, sequence: int, outcome: str) -> str:
    """Change one event's outcome and re-hash the clinic's chain from there on, so that every
    link checks out again: what someone with write access to the database can do."""
    return f"""
    DO $$
    DECLARE e clinic_auditevent; prev text;
    BEGIN
        SELECT hash INTO prev FROM clinic_auditevent
        WHERE clinic_id = '{clinic_id}' AND sequence = {sequence - 1};
        prev := coalesce(prev, repeat('0', 64));
        FOR e IN SELECT * FROM clinic_auditevent
                 WHERE clinic_id = '{clinic_id}' AND sequence >= {sequence} ORDER BY sequence
        LOOP
            IF e.sequence = {sequence} THEN e.outcome := '{outcome}'; END IF;
            e.previous_hash := prev;
            e.hash := encode(sha256(convert_to(prev || clinic_auditevent_canonical(e), 'UTF8')),
                             'hex');
            UPDATE clinic_auditevent SET outcome = e.outcome, previous_hash = e.previous_hash,
                   hash = e.hash WHERE id = e.id;
            prev := e.hash;
        END LOOP;
    END $$;
    """


def write_events(actor, count: int) -> None:
    for n in range(count):
        audit.record(actor=actor, action="patient.read", object_type="patient", object_id=n)


@pytest.mark.django_db(transaction=True)
def test_heads_are_signed_once_per_move_and_the_signature_holds(clinic, admin, other_clinic):
    write_events(admin, 3)
    written = checkpoints.write()
    # The clinic's audit chain has moved; the other clinic's and the treatment chains are empty.
    assert [(c.chain, c.clinic_id, c.sequence, c.reason) for c in written] == [
        ("clinic_auditevent", clinic.id, 3, "periodic")
    ]
    head = AuditEvent.objects.get(clinic=clinic, sequence=3)
    assert written[0].hash == head.hash
    keys = checkpoints.verify_keys()
    assert checkpoints.SignedHead.from_model(written[0]).signature_error(keys) is None

    assert checkpoints.write() == []  # nothing moved: nothing signed
    write_events(admin, 2)
    assert [c.sequence for c in checkpoints.write()] == [5]
    output, error = run_verify()
    assert error is None
    assert f"ok      clinic_auditevent clinic={clinic.id}: 5 linked; 2 signed checkpoints hold" in (
        output.splitlines()
    )


@pytest.mark.django_db(transaction=True)
def test_a_consistent_rewrite_is_named_by_the_checkpoint_it_contradicts(clinic, admin):
    write_events(admin, 4)
    first = checkpoints.write()[0]  # head at 4
    write_events(admin, 4)
    second = checkpoints.write()[0]  # head at 8
    write_events(admin, 2)

    behind_the_back(rewrite_consistently(clinic.id, 6, "denied"))

    # The chain alone no longer shows it: every link checks out.
    (report,) = [r for r in audit.verify(clinic.id) if r.table == "clinic_auditevent"]
    assert report.broken is None and report.length == 10

    eighth = AuditEvent.objects.get(clinic=clinic, sequence=8)
    output, error = run_verify("--clinic", str(clinic.id))
    broken = (
        f"clinic_auditevent id={eighth.id} sequence=8: hash differs from the checkpoint signed at "
        f"{audit.utc_text(second.signed_at)}: the chain was rewritten and re-hashed to look "
        "consistent, in the rows from sequence 5 to 8"
    )
    assert error == f"Broken hash chain: {broken}"
    assert f"BROKEN  clinic_auditevent clinic={clinic.id}: first broken link {broken}" in output
    assert first.sequence == 4  # the first checkpoint still holds: the range starts after it


@pytest.mark.django_db(transaction=True)
def test_a_chain_cut_short_of_its_checkpoint_is_named(clinic, admin):
    write_events(admin, 5)
    signed = checkpoints.write()[0]
    behind_the_back(
        f"DELETE FROM clinic_auditevent WHERE clinic_id = '{clinic.id}' AND sequence >= 4"
    )
    _output, error = run_verify()
    assert error == (
        "Broken hash chain: clinic_auditevent id=None sequence=5: the chain ends at sequence 3 "
        f"but the checkpoint signed at {audit.utc_text(signed.signed_at)} covers sequence 5: "
        "rows were removed from its end"
    )


@pytest.mark.django_db(transaction=True)
def test_a_forged_or_foreign_checkpoint_is_refused(clinic, admin):
    write_events(admin, 2)
    (signed,) = checkpoints.write()
    # Someone re-signs a rewritten head with a key of their own, or edits the stored hash.
    behind_the_back(
        f"UPDATE clinic_auditcheckpoint SET hash = repeat('a', 64) WHERE id = {signed.id}"
    )
    _output, error = run_verify()
    assert error is not None
    assert (
        f"checkpoint clinic_auditevent clinic={clinic.id} sequence=2: signature does not verify: "
        "the checkpoint was forged or altered"
    ) in error

    with override_settings(AUDIT_SIGNING_KEY=OTHER_KEY):
        write_events(admin, 1)
        (foreign,) = checkpoints.write()
    _output, error = run_verify()
    assert (
        f"checkpoint clinic_auditevent clinic={clinic.id} sequence=3: signed by unknown key "
        f"{foreign.key_id} (not in AUDIT_SIGNING_KEY/AUDIT_VERIFY_KEYS)"
    ) in error


@pytest.mark.django_db(transaction=True)
def test_a_rotated_key_keeps_verifying_through_audit_verify_keys(clinic, admin):
    with override_settings(AUDIT_SIGNING_KEY=OTHER_KEY):
        write_events(admin, 2)
        checkpoints.write()
    _output, error = run_verify()
    assert error is not None and "signed by unknown key" in error
    with override_settings(AUDIT_VERIFY_KEYS=[OTHER_PUBLIC]):
        output, error = run_verify()
    assert error is None
    assert f"ok      clinic_auditevent clinic={clinic.id}: 2 linked; 1 signed checkpoints hold" in (
        output.splitlines()
    )


@pytest.mark.django_db(transaction=True)
def test_the_logged_copy_catches_checkpoints_deleted_from_the_table(
    clinic, admin, caplog, tmp_path
):
    write_events(admin, 3)
    with caplog.at_level(logging.INFO, logger="clinic.checkpoints"):
        checkpoints.write()
        write_events(admin, 3)
        checkpoints.write()
    lines = [r.getMessage() for r in caplog.records if r.name == "clinic.checkpoints"]
    assert len(lines) == 2
    copy = tmp_path / "checkpoints.log"
    copy.write_text("\n".join(f"2026-12-02 INFO {line}" for line in lines) + "\n")

    # The whole rewrite: events re-hashed and the checkpoints that would tell removed.
    behind_the_back(
        rewrite_consistently(clinic.id, 2, "denied"), "DELETE FROM clinic_auditcheckpoint"
    )
    _output, error = run_verify()
    assert error is None  # the database alone now looks clean...
    _output, error = run_verify("--checkpoints", str(copy))
    assert error is not None  # ...its copy does not
    signed = [checkpoints.SignedHead.from_json(line[line.index("{") :]) for line in lines]
    assert (
        f"checkpoint clinic_auditevent clinic={clinic.id} sequence=3 signed at "
        f"{signed[0].signed_at} is in the copy but not in the table: checkpoints were deleted"
    ) in error
    third = AuditEvent.objects.get(clinic=clinic, sequence=3)
    assert (
        f"clinic_auditevent id={third.id} sequence=3: hash differs from the checkpoint signed at "
        f"{signed[0].signed_at}: the chain was rewritten and re-hashed to look consistent, in the "
        "rows from sequence 1 to 3"
    ) in error


@pytest.mark.django_db(transaction=True)
def test_checkpoints_are_append_only(clinic, admin):
    write_events(admin, 1)
    (signed,) = checkpoints.write()
    for statement in (
        "UPDATE clinic_auditcheckpoint SET sequence = 9 WHERE id = %s",
        "DELETE FROM clinic_auditcheckpoint WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            sql(statement, [signed.id])


@pytest.mark.django_db(transaction=True)
def test_beat_signs_periodically_and_an_export_signs_first(clinic, admin, auditor, api):
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["clinic.write_audit_checkpoints"]
    assert entry["task"] == "clinic.write_audit_checkpoints"
    assert entry["schedule"] == float(settings.AUDIT_CHECKPOINT_SECONDS)

    write_events(admin, 2)
    assert write_audit_checkpoints() == 1

    write_events(admin, 1)
    client = api(auditor)
    head = AuditEvent.objects.filter(clinic=clinic).order_by("-sequence").first()
    response = client.get("/api/v1/exports/tip-usage.csv")
    assert response.status_code == 200
    b"".join(response.streaming_content)
    exported = AuditCheckpoint.objects.filter(clinic=clinic, reason="export").get()
    assert (exported.sequence, exported.hash) == (head.sequence, head.hash)
    # The export's own event comes after the head it vouched for.
    assert AuditEvent.objects.get(clinic=clinic, action="export.tip_usage").sequence > head.sequence


@pytest.mark.django_db
def test_without_a_key_nothing_is_signed_and_the_key_command_makes_one(clinic, admin, caplog):
    write_events(admin, 1)
    with override_settings(AUDIT_SIGNING_KEY=""), caplog.at_level(logging.WARNING):
        assert checkpoints.write() == []
    assert "AUDIT_SIGNING_KEY is not set" in caplog.text
    out = StringIO()
    call_command("audit_checkpoint", "--generate-key", stdout=out)
    private_line, public_line = out.getvalue().splitlines()
    private = private_line.removeprefix("AUDIT_SIGNING_KEY=")
    assert len(base64.b64decode(private)) == 32
    with override_settings(AUDIT_SIGNING_KEY=private):
        keys = checkpoints.verify_keys()
    assert len(base64.b64decode(public_line.removeprefix("# public half: "))) == 32
    assert len(keys) == 1


def test_check_deploy_warns_without_a_key_and_refuses_a_malformed_one():
    from clinic.checks import audit_signing_key

    assert audit_signing_key() == []
    with override_settings(AUDIT_SIGNING_KEY=""):
        assert [m.id for m in audit_signing_key()] == ["clinic.W001"]
    with override_settings(AUDIT_SIGNING_KEY="bm90LTMyLWJ5dGVz"):
        (error,) = audit_signing_key()
    assert (error.id, error.msg) == (
        "clinic.E001",
        "AUDIT_SIGNING_KEY must be 32 bytes (base64), not 12",
    )
    with override_settings(AUDIT_VERIFY_KEYS=["%%%"]):
        (error,) = audit_signing_key()
    assert error.id == "clinic.E001" and error.msg.startswith("AUDIT_VERIFY_KEYS is not base64")
