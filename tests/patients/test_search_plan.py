"""Patient search is answered by one GIN index over the clinic and the search text's trigrams
(btree_gin): the clinic is an index condition, not a filter applied to every clinic's
matches."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from patients import selectors
from tests.factories import PatientFactory


@pytest.mark.django_db
def test_a_clinics_search_uses_the_clinic_and_trigram_index(clinic, other_clinic):
    PatientFactory(clinic=clinic, last_name="Whitfield")
    PatientFactory(clinic=other_clinic, last_name="Whitfield")
    with CaptureQueriesContext(connection) as captured:
        found = list(selectors.search_patients(selectors.patients_of_clinic(clinic.id), "whitf"))
    assert [p.last_name for p in found] == ["Whitfield"]
    (sql,) = [q["sql"] for q in captured.captured_queries]
    with connection.cursor() as cursor:
        # Two rows: left alone, the planner reads them whole or through any index on the
        # clinic; this asks which index serves the search itself (the drops roll back).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "DROP INDEX patients_patient_clinic_name, patients_patient_clinic_id_3ba5a264"
        )
        cursor.execute(f"EXPLAIN {sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Bitmap Index Scan on patients_patient_clinic_search" in plan
    index_condition = plan.split("Bitmap Index Scan on patients_patient_clinic_search")[1]
    assert "Index Cond: ((clinic_id = " in index_condition
    assert "search_text" in index_condition.split("\n")[1]


@pytest.mark.django_db
def test_a_lots_usage_is_planned_with_the_clinic_and_lot_statistics():
    """A lot belongs to one clinic: extended statistics tell PostgreSQL so (migration
    treatments/0009); the planner otherwise multiplies the two selectivities."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT stxname, stxkind::text, array(SELECT attname FROM pg_attribute"
            " WHERE attrelid = stxrelid AND attnum = ANY(stxkeys) ORDER BY attnum)"
            " FROM pg_statistic_ext WHERE stxrelid = 'treatments_treatmentrecord'::regclass"
        )
        assert cursor.fetchall() == [
            ("treatments_treatmentrecord_clinic_lot", "{d,f}", ["clinic_id", "tip_lot_id"])
        ]


@pytest.mark.django_db
def test_the_compiled_page_uses_it_when_planned_once_for_every_search(clinic, other_clinic):
    """The list's page is one prepared statement for every search of one word
    (patients.selectors.active_patients_matching), its pattern and window parameters: planned
    once for all of them (a generic plan, which PostgreSQL may choose for a prepared statement
    after five runs), the search still reads through the clinic's trigram index."""
    PatientFactory(clinic=clinic, last_name="Whitfield")
    PatientFactory(clinic=other_clinic, last_name="Whitfield")
    pages = selectors.active_patients_matching(clinic.id, "whitf")
    assert [p.last_name for p in pages[0:11]] == ["Whitfield"]
    sql = selectors._ACTIVE_MATCHING._compiled(pages.values).windowed_sql
    numbered = iter(range(1, 10))
    statement = re.sub("%s", lambda _match: f"${next(numbered)}", sql)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "DROP INDEX patients_patient_clinic_name, patients_patient_clinic_id_3ba5a264"
        )
        cursor.execute(f"PREPARE listed (uuid, text, bigint, bigint) AS {statement}")
        try:
            cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            cursor.execute(f"EXPLAIN EXECUTE listed ('{clinic.id}', '%WHITF%', 11, 0)")
            plan = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE listed")
    assert "Bitmap Index Scan on patients_patient_clinic_search" in plan
    index_condition = plan.split("Bitmap Index Scan on patients_patient_clinic_search")[1]
    assert "Index Cond: ((clinic_id = $1)" in index_condition
    assert "search_text" in index_condition.split("\n")[1]
