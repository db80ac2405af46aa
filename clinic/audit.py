"""The audit trail (HIPAA 164.312(b)) and the tamper evidence of hash chains (164.312(c)).

Services call `record` inside their transaction; views call `record_reads` for reads of patient
data. Neither computes a hash: PostgreSQL chains each clinic's events at COMMIT (trigger
`clinic_auditevent_chain`, migration clinic/0003), under a per-clinic advisory lock held only
for the commit, in insertion order, once per transaction and clinic (migration clinic/0007: the
first trigger call chains all of the transaction's events in one UPDATE). Treatment records are
chained the same way, one per transaction (treatments/integrity.py).

A chain link is `hash = sha256(previous_hash || canonical)`, `previous_hash` of sequence 1 being
64 zeros, where `canonical` is PostgreSQL's jsonb text of the row's content. This module
re-computes that text in Python from the raw columns (`jsonb_text`), so the verifier does not
trust any function stored in the database it checks.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from django.db import connection, connections, router, transaction
from django.utils import timezone
from django_guid import get_guid

from clinic.models import REQUEST_ID_MAX_LENGTH, AuditEvent, AuditOutcome, Clinic, User


def _event(
    *,
    actor: User | None,
    action: str,
    clinic_id: UUID | None,
    object_type: str = "",
    object_id: Any = "",
    patient_id: UUID | None = None,
    outcome: str = AuditOutcome.SUCCESS,
    actor_label: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent(
        clinic_id=clinic_id if clinic_id is not None else (actor.clinic_id if actor else None),
        at=timezone.now(),
        actor=actor,
        actor_label=actor_label or (actor.username if actor else "system"),
        action=action,
        object_type=object_type,
        object_id="" if object_id is None else str(object_id),
        patient_id=patient_id,
        # The id is client-supplied (X-Request-ID, any length); the column holds 64 characters.
        request_id=(get_guid() or "")[:REQUEST_ID_MAX_LENGTH],
        outcome=outcome,
        detail=detail or {},
    )


def record(
    *,
    actor: User | None,
    action: str,
    clinic_id: UUID | None = None,
    object_type: str = "",
    object_id: Any = "",
    patient_id: UUID | None = None,
    outcome: str = AuditOutcome.SUCCESS,
    actor_label: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    event = _event(
        actor=actor,
        action=action,
        clinic_id=clinic_id,
        object_type=object_type,
        object_id=object_id,
        patient_id=patient_id,
        outcome=outcome,
        actor_label=actor_label,
        detail=detail,
    )
    batch = _batch.get()
    if batch is not None and batch.depth == _savepoint_depth(batch.alias):
        batch.events.append(event)
    else:
        _insert([event])
    return event


@dataclass
class _Batch:
    alias: str
    depth: int  # real savepoints open where the block began
    events: list[AuditEvent] = field(default_factory=list)


_batch: ContextVar[_Batch | None] = ContextVar("audit_batch", default=None)


def _savepoint_depth(alias: str) -> int:
    # atomic(savepoint=False) blocks count None here: an error inside one dooms the whole
    # transaction, so only real savepoints can roll back part of it.
    return sum(1 for sid in connections[alias].savepoint_ids if sid is not None)


@contextmanager
def batched() -> Iterator[None]:
    """Inside, `record` collects its events; they are written together, in one INSERT and in
    the order recorded, when the block ends without an error (with an error they are dropped:
    the transaction, or the savepoint around the block, rolls back).

    For a service that records several events in one transaction: inside the transaction
    (`@transaction.atomic` above `@batched()`); outside one it refuses to start. An event
    recorded inside a savepoint opened within the block is written at once, so it rolls back
    with its savepoint; a block inside another at the same savepoint depth adds to the outer
    one's events. `record_reads` and refusals always write at once, so inside a block they
    are chained before the block's own events."""
    alias = router.db_for_write(AuditEvent)
    if not connections[alias].in_atomic_block:
        raise RuntimeError("audit.batched() belongs inside the transaction of its events")
    depth = _savepoint_depth(alias)
    outer = _batch.get()
    if outer is not None and outer.alias == alias and outer.depth == depth:
        start = len(outer.events)
        try:
            yield
        except BaseException:
            del outer.events[start:]  # the failed inner block's events are not the outer's
            raise
        return
    batch = _Batch(alias, depth)
    token = _batch.set(batch)
    try:
        yield
    finally:
        _batch.reset(token)
    _insert(batch.events)


# The columns an event is written with, and their types; PostgreSQL fills in the chain's three at
# commit.
_COLUMNS = {
    "id": "uuid",
    "clinic_id": "uuid",
    "at": "timestamptz",
    "actor_id": "uuid",
    "actor_label": "text",
    "action": "text",
    "object_type": "text",
    "object_id": "text",
    "patient_id": "uuid",
    "request_id": "text",
    "outcome": "text",
    "detail": "jsonb",
}
_DETAIL = AuditEvent._meta.get_field("detail")


@functools.cache
def insert_statement(varying: tuple[str, ...]) -> str:
    """One INSERT of any number of events: a column in `varying` as an array (an element per
    event, in chain order), any other as one value they share (`id` in neither: PostgreSQL's
    `clinic_uuid7()`). A shared `at` is the first event's, each next one a microsecond later:
    each event keeps its own moment, in chain order (the audit list's cursor pages on `at`).
    One text for any number of events, which psycopg converts once (a VALUES list is split
    and quoted on every call): a page's read events cost a tenth of that INSERT's Python.
    The benchmark's floor writes its audit rows with it too (benchmarks/scale/floor.py)."""
    columns = ", ".join(_COLUMNS)
    arrays = ", ".join(f"%({name})s::{_COLUMNS[name]}[]" for name in varying)
    values = ", ".join(
        f"e.{name}"
        if name in varying
        else "clinic_uuid7()"
        if name == "id"
        else "%(at)s::timestamptz + (e.written - 1) * interval '1 microsecond'"
        if name == "at"
        else f"%({name})s::{_COLUMNS[name]}"
        for name in _COLUMNS
    )
    return (
        f"INSERT INTO clinic_auditevent ({columns}) SELECT {values}"  # noqa: S608 - constants only
        f" FROM unnest({arrays}) WITH ORDINALITY AS e({', '.join(varying)}, written)"
        " ORDER BY e.written"
    )


def _as_text(value: Any) -> str | None:
    # An array is of one type: a UUID and an id given as text side by side both go as text.
    return None if value is None else str(value)


def _write(alias: str, varying: dict[str, list[Any]], shared: dict[str, Any]) -> None:
    """Plain SQL (the ORM's save costs more Python than the round trip), where the router sends
    writes (which tells a read-replica request that it has written)."""
    with connections[alias].cursor() as cursor:
        cursor.execute(insert_statement(tuple(varying)), {**varying, **shared})


def _values(event: AuditEvent, db: Any) -> dict[str, Any]:
    """The event's columns as the INSERT takes them: the detail as the model's field writes it,
    ids as text (an array is of one type: a UUID and an id given as text side by side)."""
    e = event
    values = (
        e.id, e.clinic_id, e.at, e.actor_id, e.actor_label, e.action, e.object_type, e.object_id,
        e.patient_id, e.request_id, e.outcome, _DETAIL.get_db_prep_value(e.detail, db),
    )  # fmt: skip
    return {
        name: _as_text(value) if kind == "uuid" else value
        for (name, kind), value in zip(_COLUMNS.items(), values, strict=True)
    }


def _insert(events: Sequence[AuditEvent]) -> None:
    """Write the events in one INSERT, in the order given (the order they are chained in)."""
    if not events:
        return
    alias = router.db_for_write(AuditEvent)
    rows = [_values(e, connections[alias]) for e in events]
    _write(alias, {name: [row[name] for row in rows] for name in _COLUMNS}, {})
    for e in events:
        e._state.adding, e._state.db = False, alias


# Refusals written inside a transaction that an outer layer then rolls back (the idempotency
# middleware undoes a refused request's effects) are written again after the rollback.
_kept_refusals: ContextVar[list[AuditEvent] | None] = ContextVar("kept_refusals", default=None)


def record_refusal(
    *,
    actor: User,
    action: str,
    code: str,
    object_type: str,
    object_id: Any,
    patient_id: UUID | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """A refused action (outcome `denied`, the error's `code` in the detail).

    Called by a service after its own transaction has rolled back, so the event outlives the
    refused work; under `keeping_refusals` it also outlives an outer rollback."""
    event = _event(
        actor=actor,
        action=action,
        clinic_id=None,
        object_type=object_type,
        object_id=object_id,
        patient_id=patient_id,
        outcome=AuditOutcome.DENIED,
        detail={"code": code, **(detail or {})},
    )
    _insert([event])  # at once, never in a batch that an error is about to drop
    kept = _kept_refusals.get()
    if kept is not None and connection.in_atomic_block:
        kept.append(event)
    return event


@contextmanager
def keeping_refusals() -> Iterator[list[AuditEvent]]:
    """Collect the refusals recorded inside; `restore_refusals` writes them again once the
    transaction around them has been rolled back."""
    kept: list[AuditEvent] = []
    token = _kept_refusals.set(kept)
    try:
        yield kept
    finally:
        _kept_refusals.reset(token)


def restore_refusals(events: Iterable[AuditEvent]) -> None:
    _insert(list(events))


def record_reads(
    *, actor: User, action: str, object_type: str, objects: Iterable[tuple[Any, UUID | None]]
) -> None:
    """One event per patient-data object read, written in one query whatever the page size
    (and chained at commit in the order given).

    `objects` yields (object_id, patient_id) pairs. The events are one read's: they share
    everything but the object and its patient (their moments a microsecond apart, in order),
    so only those two travel per event."""
    objects = list(objects)
    if not objects:
        return
    alias = router.db_for_write(AuditEvent)
    # Every column but those two as _event gives them (the id is drawn per event).
    shared = _values(
        _event(actor=actor, action=action, clinic_id=actor.clinic_id, object_type=object_type),
        connections[alias],
    )
    varying: dict[str, list[Any]] = {"object_id": [], "patient_id": []}
    for object_id, patient_id in objects:
        varying["object_id"].append("" if object_id is None else str(object_id))
        varying["patient_id"].append(_as_text(patient_id))
    for name in ("id", *varying):
        del shared[name]
    _write(alias, varying, shared)


# --- Back-office (Django admin) logins -------------------------------------------------------
# The API's token login audits itself (clinic.services.login). Session logins to /admin/ go
# through django.contrib.auth, whose signals are connected to these in ClinicConfig.ready().


def record_session_login(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    record(
        actor=user,
        action="auth.login",
        object_type="staff",
        object_id=user.id,
        detail={"via": "admin"},
    )


def record_session_login_failure(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
) -> None:
    # authenticate() without a request is the API's login, which records its own failures.
    if request is None:
        return
    username = str(credentials.get("username", ""))
    known = User.objects.filter(username__iexact=username).only("id", "clinic_id").first()
    record(
        actor=None,
        actor_label=username[:150],
        clinic_id=known.clinic_id if known else None,
        action="auth.login",
        object_type="staff",
        object_id=known.id if known else "",
        outcome=AuditOutcome.FAILED,
        detail={"via": "admin"},
    )


# --- Hash chains --------------------------------------------------------------------------------

GENESIS_HASH = "0" * 64


class RawJSON(str):
    """JSON text already in PostgreSQL's jsonb form (e.g. `detail::text`), inserted as is."""


# The C encoder json.dumps(ensure_ascii=False) uses, without json.dumps' per-call set-up.
_encode_string: Callable[[str], str] = json.encoder.encode_basestring


@functools.lru_cache(maxsize=256)
def _key_order(keys: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    ordered = sorted(keys, key=lambda key: (len(key.encode()), key.encode()))
    return tuple((key, _encode_string(key) + ": ") for key in ordered)


def jsonb_text(value: Any) -> str:
    """`value` as PostgreSQL writes a jsonb value as text: object keys ordered by length in
    bytes, then bytewise; ", " and ": " separators; strings escaped as JSON (non-ASCII kept)."""
    kind = type(value)
    if kind is str:
        return _encode_string(value)
    if value is None:
        return "null"
    if kind is RawJSON:
        return str.__str__(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if isinstance(value, Mapping):
        parts = [prefix + jsonb_text(value[key]) for key, prefix in _key_order(tuple(value))]
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(jsonb_text(item) for item in value) + "]"
    if isinstance(value, str):
        return _encode_string(value)
    raise TypeError(f"no canonical text for {type(value).__name__}")


def utc_text(moment: datetime | str) -> str:
    """A timestamp as the canonical text has it: UTC, microseconds, Z (text passes through)."""
    if isinstance(moment, str):
        return moment
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def date_text(day: date | str) -> str:
    return day if isinstance(day, str) else day.isoformat()


def id_text(value: UUID | str | None) -> str | None:
    return None if value is None else str(value)


# The verifiers' queries read every value as the text the canonical form holds.
UTC_TEXT_FORMAT = '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\''


def chain_hash(previous_hash: str, canonical: str) -> str:
    return hashlib.sha256((previous_hash + canonical).encode()).hexdigest()


@dataclass(frozen=True)
class ChainRow:
    id: Any
    sequence: int | None
    previous_hash: str | None
    hash: str | None
    canonical: str


@dataclass(frozen=True)
class BrokenLink:
    table: str
    id: Any
    sequence: int | None
    reason: str

    def __str__(self) -> str:
        return f"{self.table} id={self.id} sequence={self.sequence}: {self.reason}"


@dataclass(frozen=True)
class HashChain:
    """One table whose rows are chained per clinic. `rows(clinic_id)` yields the clinic's rows
    by sequence (rows never chained last), each with its canonical text computed in Python."""

    table: str
    rows: Callable[[UUID | None], Iterator[ChainRow]]
    # The audit trail also has a chain for events of no clinic (logins of unknown usernames).
    has_clinicless_chain: bool = False


@dataclass(frozen=True)
class ChainReport:
    table: str
    clinic_id: UUID | None
    length: int
    broken: BrokenLink | None


_chains: dict[str, HashChain] = {}


def register_chain(chain: HashChain) -> None:
    """Let an app above add its chained table to `verify_audit`, from its AppConfig.ready()."""
    _chains[chain.table] = chain


def registered_chains() -> list[HashChain]:
    return list(_chains.values())


@dataclass(frozen=True)
class Anchor:
    """A link vouched for from outside the chain (a signed checkpoint): the row at `sequence`
    must have `hash`. `label` says where it comes from, for the report."""

    sequence: int
    hash: str
    label: str


def verify_chain(
    chain: HashChain, clinic_id: UUID | None, anchors: Sequence[Anchor] = ()
) -> ChainReport:
    """Walk one clinic's chain from sequence 1 and stop at the first broken link: a row that
    does not link to the one before, or (re-hashed to look consistent) one that disagrees with
    an anchor, or a chain that ends before an anchor's sequence."""
    pending = sorted(anchors, key=lambda anchor: anchor.sequence)
    next_anchor = 0
    last_held: Anchor | None = None
    expected_sequence = 1
    expected_previous = GENESIS_HASH
    for row in chain.rows(clinic_id):
        reason = None
        if row.sequence is None:
            reason = "never chained (no sequence): written with the chain trigger disabled"
        elif row.sequence != expected_sequence:
            reason = (
                f"sequence {row.sequence} where {expected_sequence} was expected: a row is "
                "missing or was renumbered"
            )
        elif row.previous_hash != expected_previous:
            reason = "previous_hash is not the hash of the row before: the chain was re-linked"
        elif chain_hash(row.previous_hash, row.canonical) != row.hash:
            reason = "hash does not match the row's content: the row was altered"
        while reason is None and next_anchor < len(pending):
            anchor = pending[next_anchor]
            if anchor.sequence != row.sequence:
                break
            next_anchor += 1
            if anchor.hash == row.hash:
                last_held = anchor
                continue
            since = 1 if last_held is None else last_held.sequence + 1
            reason = (
                f"hash differs from the {anchor.label}: the chain was rewritten and re-hashed "
                f"to look consistent, in the rows from sequence {since} to {anchor.sequence}"
            )
        if reason:
            broken = BrokenLink(chain.table, row.id, row.sequence, reason)
            return ChainReport(chain.table, clinic_id, expected_sequence - 1, broken)
        expected_previous = row.hash or ""
        expected_sequence += 1
    length = expected_sequence - 1
    if next_anchor < len(pending):
        anchor = pending[next_anchor]
        broken = BrokenLink(
            chain.table,
            None,
            anchor.sequence,
            f"the chain ends at sequence {length} but the {anchor.label} covers sequence "
            f"{anchor.sequence}: rows were removed from its end",
        )
        return ChainReport(chain.table, clinic_id, length, broken)
    return ChainReport(chain.table, clinic_id, length, None)


def verify(
    clinic_id: UUID | None = None,
    anchors: Callable[[str, UUID | None], Sequence[Anchor]] | None = None,
) -> Iterator[ChainReport]:
    """Every registered chain of one clinic, or of every clinic (and the clinic-less one),
    each checked against the anchors `anchors(table, clinic_id)` gives."""
    clinic_ids: list[UUID | None] = (
        [clinic_id]
        if clinic_id is not None
        else list(Clinic.objects.order_by("created_at", "id").values_list("id", flat=True))
    )
    for chain in registered_chains():
        for each in clinic_ids:
            yield verify_chain(chain, each, anchors(chain.table, each) if anchors else ())
        if clinic_id is None and chain.has_clinicless_chain:
            yield verify_chain(chain, None, anchors(chain.table, None) if anchors else ())


def stream_rows(sql: str, params: Sequence[Any], batch: int = 5000) -> Iterator[tuple[Any, ...]]:
    """Rows of one query through a server-side cursor: memory stays flat on long chains."""
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(batch):
            yield from rows


_AUDIT_COLUMNS = (
    "sequence, previous_hash, hash, id::text, clinic_id::text,"
    " to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), actor_id::text,"
    " actor_label, action,"
    " object_type, object_id, patient_id::text, request_id, outcome, detail::text"
)


def _audit_rows(clinic_id: UUID | None) -> Iterator[ChainRow]:
    where = "clinic_id IS NULL" if clinic_id is None else "clinic_id = %s"
    sql = (
        f"SELECT {_AUDIT_COLUMNS} FROM clinic_auditevent WHERE {where}"  # noqa: S608 - no input
        " ORDER BY sequence NULLS LAST, at, id"
    )
    for row in stream_rows(sql, [] if clinic_id is None else [clinic_id]):
        yield ChainRow(
            id=row[3],
            sequence=row[0],
            previous_hash=row[1],
            hash=row[2],
            canonical=audit_canonical(row[3:], sequence=row[0]),
        )


def audit_canonical(columns: Sequence[Any], *, sequence: int | None) -> str:
    """The canonical text of an audit event, from its columns (id ... detail::text)."""
    (event_id, clinic_id, at, actor_id, actor_label, action, object_type, object_id, patient_id,
     request_id, outcome, detail) = columns  # fmt: skip
    return jsonb_text(
        {
            "id": id_text(event_id),
            "clinic": id_text(clinic_id),
            "sequence": sequence,
            "at": utc_text(at),
            "actor": id_text(actor_id),
            "actor_label": actor_label,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "patient": id_text(patient_id),
            "request_id": request_id,
            "outcome": outcome,
            "detail": RawJSON(detail),
        }
    )


register_chain(HashChain("clinic_auditevent", _audit_rows, has_clinicless_chain=True))
