"""The tip-usage export: every cartridge used, one CSV row per treatment record.

PostgreSQL writes the CSV itself (`COPY (SELECT ...) TO STDOUT (FORMAT csv, HEADER)`) and
psycopg hands it over as it arrives, so memory stays flat however many rows, and the speed is
close to PostgreSQL's own (benchmarks/tip_usage_export.py measures it against `psql \\copy`).
The HTTP view and `manage.py export_tip_usage` share one `TipUsageExporter` (pretix's
BaseExporter shape: an identifier, validated parameters, `render()` with a progress callback),
which owns the parameters' validation and the export's audit event.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db import connections, transaction

from clinic import audit, checkpoints, dates, db_router
from clinic.errors import InvalidInput
from clinic.models import Clinic, User
from clinic.rules import day_bounds
from treatments.models import TipLot
from treatments.selectors import CURRENT_DEPTHS_SQL, LATEST_AMENDED_DEPTHS_SQL

# The contract fixes the first eight columns; the rest are ours.
HEADER = (
    "used_at",
    "lot_number",
    "lot_expires_on",
    "session_id",
    "series_id",
    "patient_id",
    "provider",
    "handpiece_serial",
    "treatment_id",
    "gtin",
    "depths",
    "max_depth_mm",
    "provider_name",
    "record_sequence",
    "record_hash",
    "acknowledged_warnings",
)

# Spreadsheet formulas (OWASP "CSV injection"): a cell that starts with = + - @, a tab or a
# carriage return is run by Excel, LibreOffice and Sheets as a formula (`=HYPERLINK(...)` as a
# staff name, `@SUM(...)` as a serial). Every text cell a person typed is written with a leading
# apostrophe then, which spreadsheets show as text: by PostgreSQL in the same SELECT (one test
# of the first character per cell, no pass over the CSV in Python). Record hashes cover the
# values as stored, not as neutralised here.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text_cell(expression: str) -> str:
    # ascii(): the first character's code point, an integer test (no collation, no substring).
    starts = ", ".join(str(ord(c)) for c in FORMULA_STARTS)
    return (
        f"CASE WHEN ascii({expression}) IN ({starts}) "
        f"THEN '''' || {expression} ELSE {expression} END"
    )


# `depths` and `max_depth_mm` are the record's current values, after its amendments
# (treatments.selectors.current_values); every other column is as recorded.
# An empty value is an empty field (COPY writes "" for an empty string, nothing for NULL).
# `used_at` as Python's isoformat() writes it in the clinic's zone: seconds, microseconds only
# when there are any, and the offset (the session's TimeZone is the clinic's during the COPY).
_SELECT = f"""
SELECT
    to_char(r.performed_at, CASE WHEN date_trunc('second', r.performed_at) = r.performed_at
        THEN 'YYYY-MM-DD"T"HH24:MI:SSTZH:TZM'
        ELSE 'YYYY-MM-DD"T"HH24:MI:SS.USTZH:TZM' END) AS used_at,
    {_text_cell("r.lot_number")} AS lot_number,
    to_char(r.lot_expires_on, 'YYYY-MM-DD') AS lot_expires_on,
    r.session_id,
    s.series_id,
    r.patient_id,
    r.provider_id AS provider,
    {_text_cell("nullif(r.handpiece_serial, '')")} AS handpiece_serial,
    r.id AS treatment_id,
    {_text_cell("nullif(l.gtin, '')")} AS gtin,
    {_text_cell("d.depths")} AS depths,
    d.max_depth_mm,
    {_text_cell("coalesce(nullif(u.full_name, ''), u.username)")} AS provider_name,
    r.sequence AS record_sequence,
    r.hash AS record_hash,
    nullif(array_to_string(r.acknowledged_warnings, ';'), '') AS acknowledged_warnings
FROM treatments_treatmentrecord r
JOIN scheduling_session s ON s.id = r.session_id
JOIN treatments_tiplot l ON l.id = r.tip_lot_id
JOIN clinic_user u ON u.id = r.provider_id
LEFT JOIN ({LATEST_AMENDED_DEPTHS_SQL}) am ON am.record_id = r.id
LEFT JOIN LATERAL ({CURRENT_DEPTHS_SQL}) d ON true
WHERE {{where}}
ORDER BY r.performed_at, r.id
"""  # noqa: S608 (constant SQL fragments, no input)


@dataclass(frozen=True)
class TipUsageQuery:
    """Which records to export: one clinic's, used from/to these dates in its time zone
    (inclusive), optionally from one lot (resolved to its id; None with a lot given: no lot)."""

    clinic_id: UUID
    timezone: str
    used_from: date | None = None
    used_to: date | None = None
    lot_given: bool = False
    lot_id: UUID | None = None

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        zone = ZoneInfo(self.timezone)
        start = day_bounds(self.used_from, zone)[0] if self.used_from else None
        end = day_bounds(self.used_to, zone)[1] if self.used_to else None
        return start, end


def tip_usage_query(
    clinic: Clinic, *, used_from: date | None, used_to: date | None, lot: str | None
) -> TipUsageQuery:
    """`lot` is a lot id or a lot number of the clinic; another clinic's lot matches nothing,
    exactly like one that does not exist (a filter, like every list filter, never 404s)."""
    lot_id = None
    if lot:
        lots = TipLot.objects.filter(clinic_id=clinic.id)
        with contextlib.suppress(ValueError):
            lot_id = lots.filter(pk=uuid.UUID(lot)).values_list("id", flat=True).first()
        if lot_id is None:
            lot_id = lots.filter(lot_number=lot).values_list("id", flat=True).first()
    return TipUsageQuery(
        clinic_id=clinic.id,
        timezone=clinic.timezone,
        used_from=used_from,
        used_to=used_to,
        lot_given=bool(lot),
        lot_id=lot_id,
    )


def _conditions(query: TipUsageQuery) -> tuple[str, dict[str, Any]]:
    start, end = query.bounds()
    conditions = ["r.clinic_id = %(clinic)s"]
    params: dict[str, Any] = {"clinic": query.clinic_id}
    if start is not None:
        conditions.append("r.performed_at >= %(start)s")
        params["start"] = start
    if end is not None:
        conditions.append("r.performed_at < %(end)s")
        params["end"] = end
    if query.lot_given:
        conditions.append("r.tip_lot_id = %(lot)s" if query.lot_id else "false")
        if query.lot_id:
            params["lot"] = query.lot_id
    return " AND ".join(conditions), params


def tip_usage_select(query: TipUsageQuery) -> tuple[str, dict[str, Any]]:
    """The SELECT and its parameters (psycopg `%(name)s` style)."""
    where, params = _conditions(query)
    return _SELECT.format(where=where), params


def count_tip_usage(query: TipUsageQuery) -> int:
    """How many rows the export has (the joins are on required foreign keys: one row each)."""
    where, params = _conditions(query)
    with connections[db_router.reads_alias(stale_ok=True)].cursor() as wrapper:
        cursor = wrapper.cursor
        cursor.execute(f"SELECT count(*) FROM treatments_treatmentrecord r WHERE {where}", params)  # noqa: S608
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def copy_chunks(query: TipUsageQuery, chunk_bytes: int = 1 << 16) -> Iterator[tuple[bytes, int]]:
    """(CSV bytes, data rows in them), header first, in chunks of about `chunk_bytes`.

    Runs on Django's connection (so a request's or a test's transaction sees the same data),
    or the read replica's when there is one (clinic/db_router.py), in a transaction of its own
    that gives the COPY the clinic's time zone. Closing the generator early cancels the COPY on
    the server."""
    sql, params = tip_usage_select(query)
    statement = f"COPY ({sql}) TO STDOUT (FORMAT csv, HEADER)"
    alias = db_router.reads_alias(stale_ok=True)
    with transaction.atomic(using=alias), connections[alias].cursor() as wrapper:
        cursor = wrapper.cursor  # psycopg's own cursor: Django's wrapper has no copy()
        cursor.execute(
            "SELECT current_setting('TimeZone'), set_config('TimeZone', %s, true)",
            [query.timezone],
        )
        row = cursor.fetchone()
        previous_zone = row[0] if row else "UTC"
        buffer = bytearray()
        rows = -1  # the header is the first message
        with cursor.copy(statement, params) as copy:
            for data in copy:
                buffer += data
                rows += 1
                if len(buffer) >= chunk_bytes:
                    yield bytes(buffer), rows
                    buffer.clear()
                    rows = 0
        if buffer:
            yield bytes(buffer), rows
        # A savepoint (a caller's transaction) keeps SET LOCAL until the outer one ends.
        cursor.execute("SELECT set_config('TimeZone', %s, true)", [previous_zone])


# --- The exporter ------------------------------------------------------------------------------

LOT_MAX_LENGTH = 64


class TipUsageExporter:
    """One clinic's tip-usage CSV: every cartridge used, one row per treatment record.

    Built from raw parameters (`from`, `to`: days YYYY-MM-DD in the clinic's zone, inclusive;
    `lot`: a lot id or number), which it validates (InvalidInput naming the parameter, as the
    caller spells it: `parameter_name`). `render()` writes the audit event and returns the
    CSV's chunks."""

    identifier = "tip_usage"
    verbose_name = "Tip usage (CSV)"
    content_type = "text/csv; charset=utf-8"
    object_id = "tip-usage.csv"

    def __init__(
        self,
        clinic: Clinic,
        params: Mapping[str, Any],
        *,
        parameter_name: Callable[[str], str] = str,
    ) -> None:
        self.clinic = clinic
        self.parameters = self._validate(params, parameter_name)
        self.query = tip_usage_query(
            clinic,
            used_from=self.parameters["from"],
            used_to=self.parameters["to"],
            lot=self.parameters["lot"],
        )

    @staticmethod
    def _validate(
        params: Mapping[str, Any], parameter_name: Callable[[str], str]
    ) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        values: dict[str, Any] = {"from": None, "to": None, "lot": params.get("lot") or None}
        for name in ("from", "to"):
            raw = params.get(name)
            if raw in (None, ""):
                continue
            try:
                values[name] = dates.parse_date(raw)
            except ValueError:
                errors[name] = [dates.DATE_MESSAGE]
        if values["lot"] is not None and len(str(values["lot"])) > LOT_MAX_LENGTH:
            errors["lot"] = [f"Ensure this field has no more than {LOT_MAX_LENGTH} characters."]
        if not errors and values["from"] and values["to"] and values["from"] > values["to"]:
            errors["to"] = [f"Must not be before {parameter_name('from')}."]
        if errors:
            raise InvalidInput(errors)
        return values

    @property
    def filename(self) -> str:
        period = "-".join(
            str(self.parameters[key]) for key in ("from", "to") if self.parameters[key]
        )
        return f"tip-usage-{period or 'all'}.csv"

    def count(self) -> int:
        return count_tip_usage(self.query)

    def render(
        self,
        *,
        actor: User | None,
        via: str = "",
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[bytes]:
        """Audit the export (now, in the caller's request or command), then stream the CSV;
        `progress(rows)` after each chunk. The clinic's chains are checkpointed first
        (clinic/checkpoints.py): an export is a moment worth vouching for."""
        checkpoints.write(clinic_id=self.clinic.id, reason=checkpoints.Reason.EXPORT)
        audit.record(
            actor=actor,
            actor_label=via or None,
            clinic_id=self.clinic.id,
            action=f"export.{self.identifier}",
            object_type="export",
            object_id=self.object_id,
            detail=self.parameters,
        )
        return self._chunks(progress)

    def _chunks(self, progress: Callable[[int], None] | None) -> Iterator[bytes]:
        for chunk, rows in copy_chunks(self.query):
            yield chunk
            if progress is not None:
                progress(rows)
