"""The "is the time free" reads are asked so the GiST indexes answer them: with sequential scans
off, PostgreSQL's plan for each uses the exclusion constraints' indexes (sessions) and time
off's span indexes, never a btree that reads every earlier row of the provider."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clinic.models import Role
from scheduling import checks
from tests.factories import RoomFactory, SessionFactory


def _plans(queries: list[dict]) -> dict[str, str]:
    """Each captured SELECT's plan, by the table it reads (FROM "<table>")."""
    plans = {}
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for query in queries:
            sql = query["sql"]
            table = sql.split(" FROM ", 1)[1].split()[0].strip('"')
            cursor.execute(f"EXPLAIN {sql}")
            plans[table] = "\n".join(row[0] for row in cursor.fetchall())
    return plans


def _indexes(plan: str) -> set[str]:
    """The indexes a plan scans ("Index Scan using <index> on", "Bitmap Index Scan on <index>")."""
    found = set()
    for line in plan.splitlines():
        if "Bitmap Index Scan on " in line:
            found.add(line.split("Bitmap Index Scan on ", 1)[1].split()[0])
        elif "Index Scan using " in line:
            found.add(line.split("Index Scan using ", 1)[1].split()[0])
    return found


SPAN_CONDITION = "Index Cond: (tstzrange(starts_at, ends_at, '[)'::text) && "


@pytest.mark.django_db
def test_the_slot_context_reads_sessions_and_time_off_through_the_gist_indexes(
    clinic, make_user, patient, at
):
    provider = make_user(Role.PROVIDER, clinic)
    room = RoomFactory(clinic=clinic)
    SessionFactory(series__patient=patient, provider=provider, starts_at=at(1), ends_at=at(1, 11))
    with CaptureQueriesContext(connection) as captured:
        checks.slot_context(
            zone=clinic.zone,
            provider_id=provider.pk,
            room_id=room.pk,
            patient_id=patient.pk,
            start=at(1),
            end=at(1) + timedelta(hours=1),
        )
    plans = _plans(captured.captured_queries)

    # On a table this small the planner may take one of the GiST indexes and filter the OR; at
    # scale it ORs the three (benchmarks/scale.py prints that plan). Either way, only GiST.
    assert _indexes(plans["scheduling_session"]) <= {
        "scheduling_session_no_provider_overlap",
        "scheduling_session_no_room_overlap",
        "scheduling_session_no_patient_overlap",
    }
    assert _indexes(plans["scheduling_session"]) != set()
    assert SPAN_CONDITION in plans["scheduling_session"]
    assert _indexes(plans["scheduling_timeoff"]) <= {
        "scheduling_timeoff_prov_span",
        "scheduling_timeoff_room_span",
    }
    assert _indexes(plans["scheduling_timeoff"]) != set()
    assert SPAN_CONDITION in plans["scheduling_timeoff"]
