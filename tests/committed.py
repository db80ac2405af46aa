"""For the tests that need real commits (`django_db(transaction=True)`: other connections,
threads, worker processes, commit-time triggers): a cheaper flush after each of them.

Django empties the database after such a test by truncating every table, then re-creates the
content types and permissions (post_migrate). On PostgreSQL each truncated table costs new
files and an fsync, some 1.3-3 s for this schema, whatever the test wrote. This flush
truncates the tables that hold rows, and only those, so the next test starts from the same
empty database; the content types and permissions migrate made are never written by a test
and are left as they are (so there is nothing for post_migrate to re-create).

A module whose tests commit imports the fixture (`from tests.committed import
flush_only_written_tables  # noqa: F401`); it is autouse and module-scoped, so it is in place
before the first test's database set-up and until after the last one's teardown.
"""

from collections.abc import Iterator
from unittest import mock

import pytest
from django.core.management.commands import flush

# Written by migrate (and post_migrate), read by the admin and the permission checks; no test
# writes them.
KEPT = frozenset({"django_content_type", "auth_permission"})


def written_tables(connection) -> list[str]:
    """The tables that hold at least one row, in one query."""
    tables = [
        table
        for table in connection.introspection.django_table_names(
            only_existing=True, include_views=False
        )
        if table not in KEPT
    ]
    if not tables:
        return []
    quote = connection.ops.quote_name
    query = " UNION ALL ".join(
        f"SELECT %s WHERE EXISTS (SELECT 1 FROM {quote(table)})" for table in tables
    )
    with connection.cursor() as cursor:
        cursor.execute(query, tables)
        return [row[0] for row in cursor.fetchall()]


# Tables with a trigger of the project's own that fires on DELETE (the append-only audit trail,
# its checkpoints, the immutable consent forms...): emptied by TRUNCATE, as Django's flush does.
REFUSING_DELETE = """
SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE NOT t.tgisinternal AND t.tgtype & 8 = 8
"""


def sql_flush_written(style, connection, reset_sequences=True, allow_cascade=False):
    """DELETE the rows of the tables that hold any (a few rows cost far less to delete than a
    table to truncate); TRUNCATE the ones whose triggers refuse a DELETE, with the tables that
    refer to them (CASCADE)."""
    written = written_tables(connection)
    if not written:
        return []
    with connection.cursor() as cursor:
        cursor.execute(REFUSING_DELETE)
        refusing = {row[0] for row in cursor.fetchall()}
    quote = connection.ops.quote_name
    truncated = [table for table in written if table in refusing]
    statements = [
        # What is thrown away need not wait for the WAL to reach the disk.
        "SET LOCAL synchronous_commit TO OFF;",
        # Django's foreign keys are deferrable: checked at commit, when every row is gone.
        "SET CONSTRAINTS ALL DEFERRED;",
    ]
    if truncated:
        statements += connection.ops.sql_flush(
            style, truncated, reset_sequences=reset_sequences, allow_cascade=True
        )
    statements += [f"DELETE FROM {quote(table)};" for table in written if table not in refusing]
    return statements


@pytest.fixture(scope="module", autouse=True)
def flush_only_written_tables() -> Iterator[None]:
    with (
        mock.patch.object(flush, "sql_flush", sql_flush_written),
        # The kept tables were not emptied, so there is nothing to re-create.
        mock.patch.object(flush, "emit_post_migrate_signal", lambda *args, **kwargs: None),
    ):
        yield
