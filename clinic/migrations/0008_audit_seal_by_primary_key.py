from django.db import migrations

# The seal of migration 0007, two plans corrected (found at 100,000 sessions by `make bench`,
# auto_explain of the trigger's statements):
# - "is my row sealed already?" asks by primary key only. With "AND hash IS NULL" the planner
#   chose the partial index of unsealed rows, which keeps every sealed row's old version until
#   VACUUM: a few milliseconds for each of an audited page's hundred calls.
# - the one UPDATE names its rows by primary key as well (`id = ANY(ids)`), so it never hashes
#   the whole table against the unnested arrays.
SQL = r"""
CREATE OR REPLACE FUNCTION clinic_auditevent_seal() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    event clinic_auditevent;
    last_sequence bigint;
    last_hash text;
    ids uuid[] := '{}';
    sequences bigint[] := '{}';
    previous_hashes text[] := '{}';
    hashes text[] := '{}';
    unsealed boolean;
BEGIN
    -- Sealed already by this transaction's first call for the clinic.
    -- By primary key: "AND hash IS NULL" here would let the planner read the partial index of
    -- unsealed rows, which holds every sealed row's old version until VACUUM.
    SELECT hash IS NULL INTO unsealed FROM clinic_auditevent WHERE id = NEW.id;
    IF NOT coalesce(unsealed, false) THEN
        RETURN NULL;
    END IF;
    -- One appender per clinic at a time; the lock is the transaction's until it ends, and a
    -- waiter reads the last link only once the holder has committed (a fresh snapshot per
    -- statement: READ COMMITTED, volatile function).
    PERFORM pg_advisory_xact_lock(
        hashtext('clinic_auditevent'), hashtext(coalesce(NEW.clinic_id::text, '')));
    IF NEW.clinic_id IS NULL THEN
        SELECT sequence, hash INTO last_sequence, last_hash FROM clinic_auditevent
        WHERE clinic_id IS NULL AND sequence IS NOT NULL ORDER BY sequence DESC LIMIT 1;
    ELSE
        SELECT sequence, hash INTO last_sequence, last_hash FROM clinic_auditevent
        WHERE clinic_id = NEW.clinic_id AND sequence IS NOT NULL ORDER BY sequence DESC LIMIT 1;
    END IF;
    last_sequence := coalesce(last_sequence, 0);
    last_hash := coalesce(last_hash, repeat('0', 64));
    FOR event IN
        SELECT * FROM clinic_auditevent
        WHERE hash IS NULL AND written_in = pg_current_xact_id()
          AND clinic_id IS NOT DISTINCT FROM NEW.clinic_id
        ORDER BY written_order
    LOOP
        last_sequence := last_sequence + 1;
        event.sequence := last_sequence;
        event.previous_hash := last_hash;
        last_hash := encode(
            sha256(convert_to(last_hash || clinic_auditevent_canonical(event), 'UTF8')), 'hex');
        ids := ids || event.id;
        sequences := sequences || last_sequence;
        previous_hashes := previous_hashes || event.previous_hash;
        hashes := hashes || last_hash;
    END LOOP;
    UPDATE clinic_auditevent e
    SET sequence = s.sequence, previous_hash = s.previous_hash, hash = s.hash
    FROM unnest(ids, sequences, previous_hashes, hashes) AS s(id, sequence, previous_hash, hash)
    WHERE e.id = s.id AND e.id = ANY(ids);
    RETURN NULL;
END;
$$;
"""

# Migration 0007's seal.
REVERSE_SQL = r"""
CREATE OR REPLACE FUNCTION clinic_auditevent_seal() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    event clinic_auditevent;
    last_sequence bigint;
    last_hash text;
    ids uuid[] := '{}';
    sequences bigint[] := '{}';
    previous_hashes text[] := '{}';
    hashes text[] := '{}';
BEGIN
    -- Sealed already by this transaction's first call for the clinic.
    PERFORM 1 FROM clinic_auditevent WHERE id = NEW.id AND hash IS NULL;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- One appender per clinic at a time; the lock is the transaction's until it ends, and a
    -- waiter reads the last link only once the holder has committed (a fresh snapshot per
    -- statement: READ COMMITTED, volatile function).
    PERFORM pg_advisory_xact_lock(
        hashtext('clinic_auditevent'), hashtext(coalesce(NEW.clinic_id::text, '')));
    IF NEW.clinic_id IS NULL THEN
        SELECT sequence, hash INTO last_sequence, last_hash FROM clinic_auditevent
        WHERE clinic_id IS NULL AND sequence IS NOT NULL ORDER BY sequence DESC LIMIT 1;
    ELSE
        SELECT sequence, hash INTO last_sequence, last_hash FROM clinic_auditevent
        WHERE clinic_id = NEW.clinic_id AND sequence IS NOT NULL ORDER BY sequence DESC LIMIT 1;
    END IF;
    last_sequence := coalesce(last_sequence, 0);
    last_hash := coalesce(last_hash, repeat('0', 64));
    FOR event IN
        SELECT * FROM clinic_auditevent
        WHERE hash IS NULL AND written_in = pg_current_xact_id()
          AND clinic_id IS NOT DISTINCT FROM NEW.clinic_id
        ORDER BY written_order
    LOOP
        last_sequence := last_sequence + 1;
        event.sequence := last_sequence;
        event.previous_hash := last_hash;
        last_hash := encode(
            sha256(convert_to(last_hash || clinic_auditevent_canonical(event), 'UTF8')), 'hex');
        ids := ids || event.id;
        sequences := sequences || last_sequence;
        previous_hashes := previous_hashes || event.previous_hash;
        hashes := hashes || last_hash;
    END LOOP;
    UPDATE clinic_auditevent e
    SET sequence = s.sequence, previous_hash = s.previous_hash, hash = s.hash
    FROM unnest(ids, sequences, previous_hashes, hashes) AS s(id, sequence, previous_hash, hash)
    WHERE e.id = s.id;
    RETURN NULL;
END;
$$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("clinic", "0007_audit_seal_once_per_transaction"),
    ]

    operations = [migrations.RunSQL(SQL, REVERSE_SQL)]
