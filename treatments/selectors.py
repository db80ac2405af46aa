"""Reads of treatment records that views and exports reuse, with constant query counts."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from django.db.models import Prefetch, QuerySet

from treatments.models import AftercarePlan, TreatmentAmendment, TreatmentDepth, TreatmentRecord


def treatment_records() -> QuerySet[TreatmentRecord]:
    """Records with their depths and amendments, in three queries however many."""
    return TreatmentRecord.objects.prefetch_related(
        Prefetch("depths", queryset=TreatmentDepth.objects.order_by("id")),
        Prefetch("amendments", queryset=TreatmentAmendment.objects.order_by("amended_at", "id")),
    )


def as_written(record: TreatmentRecord, depths: list[tuple[str, Decimal]]) -> TreatmentRecord:
    """A record just written with these depths (in the order written, which is their id
    order) and no amendment yet, as `treatment_records()` would read it back, without reading
    it: for the answer to the request that wrote it (its related managers then show what was
    written, not what is stored later)."""
    written = [TreatmentDepth(record=record, area=area, depth_mm=depth) for area, depth in depths]
    cache = {}
    for name, rows in (("depths", written), ("amendments", [])):
        related = getattr(record, name).all()
        related._result_cache = rows
        related._prefetch_done = True
        cache[name] = related
    record._prefetched_objects_cache = cache  # type: ignore[attr-defined]
    return record


def record_of_session(clinic_id: UUID, session_id: UUID) -> TreatmentRecord | None:
    return treatment_records().filter(clinic_id=clinic_id, session_id=session_id).first()


def lot_usage(clinic_id: UUID, lot_id: UUID) -> QuerySet[TreatmentRecord]:
    return treatment_records().filter(clinic_id=clinic_id, tip_lot_id=lot_id)


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
    depths = tuple((d.area, d.depth_mm) for d in record.depths.all())
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
