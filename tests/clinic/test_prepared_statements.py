"""The connection binds parameters on the server and prepares what it runs repeatedly
(clinic/settings.py)."""

import uuid

import psycopg
import pytest
from django.db import connection


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db
def test_a_statement_run_a_fifth_time_is_prepared():
    assert connection.settings_dict["OPTIONS"]["server_side_binding"] is True
    probe = f"probe_{uuid.uuid4().hex}"  # a statement this connection has never run
    for attempt in range(1, 8):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT %s::text AS {probe}", [str(attempt)])
            assert cursor.fetchone() == (str(attempt),)
        prepared = [sql for sql in prepared_statements() if probe in sql]
        # Run more than prepare_threshold (5) times: prepared, its value a parameter ($1).
        assert prepared == ([f"SELECT $1::text AS {probe}"] if attempt > 5 else []), attempt


@pytest.mark.django_db
def test_values_are_bound_by_the_server():
    # Django's default cursor merges values into the SQL on the client, and never prepares.
    with connection.cursor() as cursor:
        assert not isinstance(cursor.cursor, psycopg.ClientCursor)
        cursor.execute("SELECT %s::text", ["O'Brien $1 %s \\"])
        assert cursor.fetchone() == ("O'Brien $1 %s \\",)
