"""Reads of treatment records that views and exports reuse, with constant query counts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any
from uuid import UUID

from django.contrib.postgres.aggregates import JSONBAgg
from django.db.models import JSONField, Model, OuterRef, QuerySet, Subquery, TextField
from django.db.models.functions import Cast, JSONObject
from django.db.models.query import ModelIterable

from clinic.plain_sql import CompiledQuery
from treatments.models import (
    AftercarePlan,
    AftercareTemplate,
    TreatmentAmendment,
    TreatmentDepth,
    TreatmentRecord,
)


def _rows_of(model: type[Model], **fields: Any) -> Subquery:
    """The record's rows of `model` (its depths or amendments) as one JSON array, in the
    model's ordering, each row an object of these fields (name: column or expression): read
    with the record, in the same SELECT, where prefetch_related would send a query per
    relation naming every record."""
    rows = (
        model._default_manager.filter(record_id=OuterRef("pk"))
        .order_by()
        .values("record_id")
        .annotate(rows=JSONBAgg(JSONObject(**fields), order_by=model._meta.ordering))
        .values("rows")
    )
    return Subquery(rows, output_field=JSONField())


# A depth as the API writes it: the area and the depth's text, numeric(3, 2) as stored ("1.50").
_DEPTH_FIELDS = {"area": "area", "depth_mm": Cast("depth_mm", TextField())}
_AMENDMENT_FIELDS = {
    name: name for name in ("id", "amended_by_id", "amended_at", "reason", "changes")
}


def _depth_row(area: str, depth_mm: Decimal) -> dict[str, str]:
    return {"area": area, "depth_mm": f"{depth_mm:.2f}"}


def _amendment(db: str | None, record_id: UUID, row: dict[str, Any]) -> TreatmentAmendment:
    # A timestamptz in JSON is its ISO 8601 text, in the connection's time zone (UTC).
    return TreatmentAmendment.from_db(
        db,
        ["id", "record_id", "amended_by_id", "amended_at", "reason", "changes"],
        [
            UUID(row["id"]),
            record_id,
            UUID(row["amended_by_id"]),
            datetime.fromisoformat(row["amended_at"]),
            row["reason"],
            row["changes"],
        ],
    )


class _RecordIterable(ModelIterable):
    """Records as the ORM makes them, each with its depths (`record.depth_rows`, see
    `depth_rows`) and its amendments in place of a prefetch (`record.amendments.all()` answers
    them without a query), from the two JSON arrays read with it."""

    def __iter__(self) -> Iterator[TreatmentRecord]:
        for record in super().__iter__():
            yield _with_rows(record)


def _with_rows(record: TreatmentRecord) -> TreatmentRecord:
    """The record read with `_records_with_rows()`'s two JSON arrays, each in its place."""
    db, fields = record._state.db, record.__dict__
    fields["depth_rows"] = fields["depth_rows"] or []  # NULL: no depths
    amendments = fields.pop("amendment_rows") or []
    _attach_amendments(record, [_amendment(db, record.id, row) for row in amendments])
    return record


def _attach_amendments(record: TreatmentRecord, rows: list[TreatmentAmendment]) -> None:
    """`record.amendments.all()` answers these rows, as after prefetch_related; a query made
    from it (filter, order_by, values, ...) reads the record's own rows, as a related
    manager's queryset does (its filter applied only then, as Django's related managers do)."""
    related: Any = QuerySet(model=TreatmentAmendment)  # the ORM's own attributes below
    # The filter `filter()` would defer (QuerySet.query applies it when a query is made).
    related._deferred_filter = (False, (), {"record_id": record.pk})
    related._result_cache = rows
    related._prefetch_done = True
    record.__dict__.setdefault("_prefetched_objects_cache", {})["amendments"] = related


def depth_rows(record: TreatmentRecord) -> list[dict[str, str]]:
    """The record's depths as written (its original ones, in the order written), each as the
    API shows it: {"area": ..., "depth_mm": "1.50"}. Read with the record by
    `treatment_records()` (no model instance per depth), set by `as_written`, else read."""
    rows = record.__dict__.get("depth_rows")
    if rows is None:
        rows = record.__dict__["depth_rows"] = [
            _depth_row(d.area, d.depth_mm) for d in record.depths.order_by("id")
        ]
    return rows


def treatment_records() -> QuerySet[TreatmentRecord]:
    """Records with their depths and amendments, in one query however many."""
    return _records_with_rows().all()


@cache
def _records_with_rows() -> QuerySet[TreatmentRecord]:
    # Built and resolved once (its two subqueries cost more Python than their SQL); never
    # evaluated itself: each caller gets a copy (`.all()`).
    records = TreatmentRecord.objects.annotate(
        depth_rows=_rows_of(TreatmentDepth, **_DEPTH_FIELDS),
        amendment_rows=_rows_of(TreatmentAmendment, **_AMENDMENT_FIELDS),
    )
    records._iterable_class = _RecordIterable
    return records


def as_written(record: TreatmentRecord, depths: list[tuple[str, Decimal]]) -> TreatmentRecord:
    """A record just written with these depths (in the order written, which is their id
    order) and no amendment yet, as `treatment_records()` would read it back, without reading
    it: for the answer to the request that wrote it (it then shows what was written, not
    what is stored later)."""
    record.__dict__["depth_rows"] = [_depth_row(area, depth) for area, depth in depths]
    _attach_amendments(record, [])
    return record


def record_of_session(clinic_id: UUID, session_id: UUID) -> TreatmentRecord | None:
    return treatment_records().filter(clinic_id=clinic_id, session_id=session_id).first()


def lot_usage(clinic_id: UUID, lot_id: UUID) -> QuerySet[TreatmentRecord]:
    return treatment_records().filter(clinic_id=clinic_id, tip_lot_id=lot_id)


_LOT_USAGE = CompiledQuery(lambda *, clinic_id, lot_id: lot_usage(clinic_id, lot_id))


class LotUsage:
    """`lot_usage()` as a paginator slices a queryset (`usage[offset:stop]`, a list), each
    page read by one statement compiled once (clinic.plain_sql) instead of a queryset built
    and compiled anew per request (a SELECT with two JSON subqueries: about 1.7 ms of CPU per
    page, docs/benchmarks.md). The same records as the queryset's, with their depths and
    amendments."""

    def __init__(self, clinic_id: UUID, lot_id: UUID) -> None:
        self._pages = _LOT_USAGE.pages(clinic_id=clinic_id, lot_id=lot_id)

    def __getitem__(self, window: slice) -> list[TreatmentRecord]:
        return [_with_rows(record) for record in self._pages[window]]


# Read by every treatment, with the same shape each time: compiled once (clinic.plain_sql).
_RECORDS = TreatmentRecord.objects
_RECORD_OF_SESSION = CompiledQuery(
    lambda *, session_id: _RECORDS.filter(session_id=session_id).values_list("pk")[:1]
)
_TREATED_AT = CompiledQuery(
    lambda *, series_id: _RECORDS.filter(session__series_id=series_id).values_list("performed_at")
)
_DEFAULT_AFTERCARE = CompiledQuery(
    lambda *, clinic_id: AftercareTemplate.objects.filter(
        clinic_id=clinic_id, is_default=True
    ).order_by("pk")[:1]
)


def session_has_record(session_id: UUID) -> bool:
    return bool(_RECORD_OF_SESSION.rows(session_id=session_id))


def treated_at(series_id: UUID) -> list[datetime]:
    """When each of the series' sessions was treated (its records' performed_at)."""
    return [at for (at,) in _TREATED_AT.rows(series_id=series_id)]


def default_aftercare_template(clinic_id: UUID) -> AftercareTemplate | None:
    return _DEFAULT_AFTERCARE.first(clinic_id=clinic_id)  # type: ignore[return-value]


def aftercare_of_session(clinic_id: UUID, session_id: UUID) -> AftercarePlan | None:
    return AftercarePlan.objects.filter(clinic_id=clinic_id, session_id=session_id).first()


# --- A record's current values -----------------------------------------------------------------
#
# A treatment record is never edited: each amendment stores only what it changed, and the
# current value of a field is the latest amendment's that changed it, else the record's own.


@dataclass(frozen=True)
class CurrentValues:
    depths: tuple[tuple[str, Decimal], ...]
    notes: str
    depth_override_reason: str
    amended: bool

    @property
    def max_depth_mm(self) -> Decimal | None:
        return max((depth for _area, depth in self.depths), default=None)


def current_values(record: TreatmentRecord) -> CurrentValues:
    """The record as it stands after its amendments (oldest first, as `treatment_records()`
    prefetches them: no query when prefetched)."""
    depths = tuple((row["area"], Decimal(row["depth_mm"])) for row in depth_rows(record))
    notes, override = record.notes, record.depth_override_reason
    amendments = sorted(record.amendments.all(), key=lambda a: (a.amended_at, a.id))
    for amendment in amendments:
        changes = amendment.changes
        if "depths" in changes:
            depths = tuple((d["area"], Decimal(str(d["depth_mm"]))) for d in changes["depths"])
        notes = changes.get("notes", notes)
        override = changes.get("depth_override_reason", override)
    return CurrentValues(
        depths=depths, notes=notes, depth_override_reason=override, amended=bool(amendments)
    )


# The depths of `current_values` in SQL, for the tip-usage CSV (PostgreSQL writes it with COPY):
#   LEFT JOIN (LATEST_AMENDED_DEPTHS_SQL) am ON am.record_id = r.id
#   LEFT JOIN LATERAL (CURRENT_DEPTHS_SQL) d ON true
# The first is the latest amendment that changed the depths, per record: amendments are few,
# so it is one small hash join and the export keeps its speed.
LATEST_AMENDED_DEPTHS_SQL = """
SELECT DISTINCT ON (a.record_id) a.record_id, a.changes -> 'depths' AS depths
FROM treatments_treatmentamendment a
WHERE a.changes ? 'depths'
ORDER BY a.record_id, a.amended_at DESC, a.id DESC
"""
# Given `r` (the record) and `am` (its row of LATEST_AMENDED_DEPTHS_SQL, or NULLs): the current
# depths as `area:mm;...` (by area) and their maximum.
CURRENT_DEPTHS_SQL = """
SELECT string_agg(x.area || ':' || x.depth_mm::text, ';' ORDER BY x.area) AS depths,
       max(x.depth_mm) AS max_depth_mm
FROM (
    SELECT td.area, td.depth_mm
    FROM treatments_treatmentdepth td
    WHERE td.record_id = r.id AND am.depths IS NULL
    UNION ALL
    SELECT e ->> 'area', (e ->> 'depth_mm')::numeric(3, 2)
    FROM jsonb_array_elements(am.depths) e
) x
"""
