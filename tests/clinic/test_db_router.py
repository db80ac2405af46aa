"""The read replica router (clinic/db_router.py), with a second alias on the same database: a
request reads the replica until its first write, then the primary; writes, transactions,
tasks and exports behave as the module says."""

from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from clinic import db_router
from clinic.models import AuditEvent
from patients.models import Patient
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.factories import PatientFactory
from treatments import exports

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "replica"])

ROUTED = {
    "DATABASE_ROUTERS": ["clinic.db_router.ReplicaRouter"],
}


@pytest.fixture
def replica(settings):
    """The router on, its middleware first (the `replica` alias is clinic/settings_test.py's,
    a second connection to the test database)."""
    settings.MIDDLEWARE = ["clinic.db_router.ReplicaReadsMiddleware", *settings.MIDDLEWARE]
    with override_settings(**ROUTED):
        yield


def tables(queries) -> list[str]:
    """Which table each statement starts with (SELECT ... FROM "x", INSERT INTO "x")."""
    found = []
    for query in queries:
        sql = query["sql"]
        if sql.startswith("INSERT INTO "):
            found.append("INSERT " + sql.split()[2].strip('"'))
        elif " FROM " in sql:
            found.append(sql.split(" FROM ", 1)[1].split()[0].strip('"'))
    return found


def test_a_read_only_request_reads_the_replica_until_it_writes(replica, api, front_desk):
    PatientFactory.create_batch(2, clinic=front_desk.clinic)
    client = api(front_desk)
    with (
        CaptureQueriesContext(connections["default"]) as primary,
        CaptureQueriesContext(connections["replica"]) as read,
    ):
        response = client.get("/api/v1/patients/")
    assert response.status_code == 200
    # Token and user, the page from the replica; the audit rows of the read (the request's
    # first write) on the primary.
    assert tables(read.captured_queries) == ["knox_authtoken", "patients_patient"]
    assert tables(primary.captured_queries) == ["INSERT clinic_auditevent"]
    assert AuditEvent.objects.filter(action="patient.list").count() == 2


def test_after_a_write_the_same_request_reads_the_primary(replica):
    with CaptureQueriesContext(connections["replica"]) as read:
        token = db_router._replica_reads.set(True)
        try:
            assert db_router.ReplicaRouter().db_for_read(Patient) == "replica"
            PatientFactory()
            assert db_router.ReplicaRouter().db_for_read(Patient) == "default"
            assert Patient.objects.count() == 1
        finally:
            db_router._replica_reads.reset(token)
    assert read.captured_queries == []


def test_writes_transactions_tasks_and_commands_use_the_primary(replica, api, front_desk):
    router = db_router.ReplicaRouter()
    # No request: a task, a command, the shell.
    assert router.db_for_read(Patient) == "default"
    token = db_router._replica_reads.set(True)
    try:
        with transaction.atomic():
            assert router.db_for_read(Patient) == "default"
        assert router.db_for_read(Patient) == "replica"
    finally:
        db_router._replica_reads.reset(token)
    with CaptureQueriesContext(connections["replica"]) as read:
        response = api(front_desk).post(
            "/api/v1/patients/",
            {
                "first_name": "Ada",
                "last_name": "Lovelace",
                "date_of_birth": "1990-01-01",
                "fitzpatrick_type": 2,
            },
            format="json",
        )
    assert response.status_code == 201
    assert read.captured_queries == []
    assert router.allow_migrate("replica", "patients") is False
    assert router.allow_migrate("default", "patients") is True


def test_an_export_reads_the_replica(replica, clinic):
    query = exports.tip_usage_query(
        clinic, used_from=timezone.localdate() - timedelta(days=1), used_to=None, lot=None
    )
    with CaptureQueriesContext(connections["replica"]) as read:
        chunks = list(exports.copy_chunks(query))
        assert exports.count_tip_usage(query) == 0
    assert [rows for _chunk, rows in chunks] == [0]
    assert db_router.reads_alias(stale_ok=True) == "replica"
    assert len(read.captured_queries) >= 1


def test_compiled_slot_reads_are_routed_at_each_call(replica):
    """The slot reads are compiled once (clinic.plain_sql.CompiledQuery) but routed per call:
    a read-only request's go to the replica, a booking's (inside its transaction) to the
    primary, whichever came first."""
    import uuid
    from zoneinfo import ZoneInfo

    from scheduling import checks

    def read_slots() -> None:
        start = timezone.now()
        checks.slot_context(
            zone=ZoneInfo("UTC"),
            provider_id=uuid.uuid4(),
            room_id=uuid.uuid4(),
            patient_id=uuid.uuid4(),
            start=start,
            end=start + timedelta(hours=1),
        )

    slot_tables = ["scheduling_workinginterval", "scheduling_timeoff", "scheduling_session"]
    token = db_router._replica_reads.set(True)
    try:
        with (
            CaptureQueriesContext(connections["default"]) as primary,
            CaptureQueriesContext(connections["replica"]) as read,
        ):
            read_slots()
            with transaction.atomic():
                read_slots()
            read_slots()
    finally:
        db_router._replica_reads.reset(token)
    assert tables(read.captured_queries) == slot_tables * 2
    assert [
        t for t in tables(primary.captured_queries) if t.startswith("scheduling")
    ] == slot_tables


def test_a_compiled_detail_read_goes_to_the_replica_until_the_request_writes(
    replica, api, front_desk
):
    from tests.factories import SeriesFactory

    series = SeriesFactory(patient__clinic=front_desk.clinic, created_by=front_desk)
    client = api(front_desk)
    for _ in range(2):  # compiled by the first request, run as SQL by the second
        with (
            CaptureQueriesContext(connections["default"]) as primary,
            CaptureQueriesContext(connections["replica"]) as read,
        ):
            assert client.get(f"/api/v1/series/{series.pk}/").status_code == 200
        assert "scheduling_series" in tables(read.captured_queries)
        assert "scheduling_series" not in tables(primary.captured_queries)
        assert "INSERT clinic_auditevent" in tables(primary.captured_queries)
