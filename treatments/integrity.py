"""Tamper evidence of treatment records: the clinic's records form one hash chain.

PostgreSQL links each record at COMMIT (trigger `treatments_treatmentrecord_chain`, migration
treatments/0003), like the audit trail's events (clinic/audit.py), so `record_treatment` calls
nothing: the chain cannot be forgotten by a writer. The link covers the record's row and its
depths (the clinical content); an amendment is a separate row, audited as `treatment.amend`.

This module re-computes the canonical text in Python from the raw columns, for `verify_audit`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from clinic.audit import (
    ChainRow,
    HashChain,
    date_text,
    id_text,
    jsonb_text,
    stream_rows,
    utc_text,
)

TABLE = "treatments_treatmentrecord"

# Every value as the text the canonical form holds (uuids, UTC timestamps, dates): psycopg then
# hands over plain strings, which is most of the verifier's speed.
_COLUMNS = (
    "r.sequence, r.previous_hash, r.hash, r.id::text, r.clinic_id::text, r.session_id::text,"
    " r.patient_id::text, r.provider_id::text, r.tip_lot_id::text, r.lot_number,"
    " to_char(r.lot_expires_on, 'YYYY-MM-DD'), r.handpiece_id::text, r.handpiece_serial,"
    " to_char(r.performed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
    " r.notes, r.depth_override_reason,"
    " to_char(r.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
    # Areas are known words (a CHECK constraint): "cheeks 1.25,forehead 0.50" parses safely.
    " (SELECT string_agg(d.area || ' ' || d.depth_mm::text, ',' ORDER BY d.area COLLATE \"C\")"
    "  FROM treatments_treatmentdepth d WHERE d.record_id = r.id)"
)


def record_canonical(columns: Sequence[Any], *, sequence: int | None) -> str:
    """The canonical text of a treatment record, from its columns (id ... depths), as Python
    values or as their canonical text."""
    (record_id, clinic_id, session_id, patient_id, provider_id, tip_lot_id, lot_number,
     lot_expires_on, handpiece_id, handpiece_serial, performed_at, notes,
     depth_override_reason, recorded_at, depths) = columns  # fmt: skip
    return jsonb_text(
        {
            "id": id_text(record_id),
            "clinic": id_text(clinic_id),
            "sequence": sequence,
            "session": id_text(session_id),
            "patient": id_text(patient_id),
            "provider": id_text(provider_id),
            "tip_lot": id_text(tip_lot_id),
            "lot_number": lot_number,
            "lot_expires_on": date_text(lot_expires_on),
            "handpiece": id_text(handpiece_id),
            "handpiece_serial": handpiece_serial,
            "performed_at": utc_text(performed_at),
            "notes": notes,
            "depth_override_reason": depth_override_reason,
            "recorded_at": utc_text(recorded_at),
            "depths": _depth_pairs(depths),
        }
    )


def _depth_pairs(depths: str | Sequence[Sequence[str]] | None) -> list[list[str]]:
    if not depths:
        return []
    if isinstance(depths, str):
        return [pair.split(" ") for pair in depths.split(",")]
    return [list(pair) for pair in depths]


def _rows(clinic_id: UUID | None) -> Iterator[ChainRow]:
    sql = (
        f"SELECT {_COLUMNS} FROM {TABLE} r WHERE r.clinic_id = %s"  # noqa: S608 - constants only
        " ORDER BY r.sequence NULLS LAST, r.recorded_at, r.id"
    )
    for row in stream_rows(sql, [clinic_id]):
        yield ChainRow(
            id=row[3],
            sequence=row[0],
            previous_hash=row[1],
            hash=row[2],
            canonical=record_canonical(row[3:], sequence=row[0]),
        )


TREATMENT_CHAIN = HashChain(TABLE, _rows)
