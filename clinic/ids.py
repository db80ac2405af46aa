"""Primary keys for rows that accumulate: time-ordered UUIDs.

A UUIDv7 (RFC 9562) is the milliseconds since the epoch, then random bits. A new row's key lands
at the newest edge of its primary key index, whose pages stay in memory; a random (v4) key lands
on a random page of an index that grows with every booking, treatment and audited read, which at
clinic-chain scale is seldom in shared_buffers and, in a freshly built index, splits. The audit
trail's page of read events draws the same layout in PostgreSQL (clinic_uuid7(), migration
clinic/0009). The id tells when the row was made, to the millisecond; every such row shows its
time anyway (`at`, `starts_at`, `created_at`).

Used by the rows that grow with the clinics' work: audit events, series, sessions, screenings,
treatment records and amendments, aftercare plans, consents, recall notices, notifications,
inbound messages, webhook deliveries (tests/clinic/test_ids.py holds the list). Clinics, staff,
patients, rooms, lots, templates, forms, endpoints and timetable rows keep random ids: they are
few, and a patient's id need not tell when the patient was registered.

Drawn by uuid-utils (the Rust `uuid` crate's v7: a counter within the millisecond keeps ids
of one process in order without moving their time ahead, and the time is the system clock's,
which tests that move Python's clock do not move), until Python 3.14's uuid.uuid7.
"""

import uuid

from uuid_utils.compat import uuid7


def time_ordered_uuid() -> uuid.UUID:
    """A UUIDv7, as a plain uuid.UUID."""
    return uuid7()
