from django.db import migrations, models

import clinic.ids

# Audit events get time-ordered ids (UUIDv7, RFC 9562), drawn in Python by the model's default
# and in PostgreSQL by clinic_uuid7() for the one INSERT of a page's read events
# (clinic.audit.insert_statement). A random (v4) id put each new row, and the seal's UPDATE of it
# at commit, on a random leaf of the primary key: at 2,000,000 events (the benchmark's large set)
# that page is seldom in shared_buffers. Writing a day view's hundred events and committing (the
# seal) took a median 11.7 to 16.6 ms there against 8.3 to 10.4 ms at 60,000 events; with
# time-ordered ids 7.8 to 8.2 ms and 7.0 to 7.7 ms (docs/benchmarks.md, seventh round). Rows
# written before keep their ids; the new ones gather at their own edge of the index.
#
# PostgreSQL 18 has uuidv7(); until then the same layout from a v4: its first 48 bits replaced by
# the milliseconds since the epoch, its version nibble 0100 turned into 0111 (bits 52 and 53 of
# set_bit's numbering, byte 6's low bits of the high nibble); the variant bits stay 10.
SQL = r"""
CREATE OR REPLACE FUNCTION clinic_uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(
                        extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;
"""

REVERSE_SQL = "DROP FUNCTION IF EXISTS clinic_uuid7();"


class Migration(migrations.Migration):
    dependencies = [
        ("clinic", "0008_audit_seal_by_primary_key"),
    ]

    operations = [
        migrations.RunSQL(SQL, REVERSE_SQL),
        migrations.AlterField(
            model_name="auditevent",
            name="id",
            field=models.UUIDField(
                default=clinic.ids.time_ordered_uuid,
                editable=False,
                primary_key=True,
                serialize=False,
            ),
        ),
    ]
