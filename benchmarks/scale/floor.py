"""The floor: what each measured request costs without the framework around it.

A floor request is a bare Django view reached before every other middleware. For a GET it runs
the very SELECTs the API's view ran for the same target (captured in the driver with the API's
own view, SQL as executed) and writes the same audit rows in one INSERT, in one transaction, and
answers the rows as JSON. For a POST it runs the SELECTs of a captured write with the target's
ids in place of the captured target's, then the same INSERTs and UPDATEs, in one transaction.
The chain triggers fire on the floor's audit rows exactly as on the API's.

Specs come from the JSON file named by BENCH_FLOOR_SPECS (written by the driver).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from functools import cache
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from clinic import audit
from clinic.ids import time_ordered_uuid


class QueryCountMiddleware:
    """Every response says how many statements its request sent to PostgreSQL."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Statements of a (re)connection (CONN_MAX_AGE expired) are not the request's.
        connection.ensure_connection()
        count = 0

        def counted(execute, sql, params, many, context):
            nonlocal count
            count += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(counted):
            response = self.get_response(request)
        response["X-Queries"] = str(count)
        return response


class FloorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/floor/"):
            _floor, name, target = request.path.strip("/").split("/")
            return floor(request, name, int(target))
        return self.get_response(request)


@cache
def specs() -> dict[str, Any]:
    with open(os.environ["BENCH_FLOOR_SPECS"]) as file:
        return json.load(file)


def floor(
    request: HttpRequest, name: str, target: int, given: dict[str, Any] | None = None
) -> HttpResponse:
    with _as_django_defaults():
        return _floor(name, target, given)


@contextmanager
def _as_django_defaults():
    """The floor's statements run unprepared, as on Django's default connection (bound as
    the API's are, on the server; a literal statement without values is sent as it is).
    The API prepares what a connection runs more than five times (clinic/settings.py); the
    floor is the framework's cost taken away, not that setting (docs/benchmarks.md, fifth
    round)."""
    connection.ensure_connection()
    raw = connection.connection
    threshold, raw.prepare_threshold = raw.prepare_threshold, None
    try:
        yield
    finally:
        raw.prepare_threshold = threshold


def _floor(name: str, target: int, given: dict[str, Any] | None) -> HttpResponse:
    spec = (given or specs())[name]
    if name == "booking":
        return _booking(spec, spec["targets"][target])
    if name == "treatment":
        return _treatment(spec, spec["targets"][target])
    return _read(spec["targets"][target])


def _selects(cursor, statements: list[str], substitute: dict[str, str] | None = None) -> list:
    results = []
    for sql in statements:
        for old, new in (substitute or {}).items():
            sql = sql.replace(old, new)
        cursor.execute(sql)
        results.append(cursor.fetchall())
    return results


# The columns of a captured audit row, in order (benchmarks/scale/dataset.capture).
_CAPTURED = (
    "clinic_id", "actor_id", "actor_label", "action", "object_type", "object_id", "patient_id",
    "detail",
)  # fmt: skip


def _insert_audit(cursor, rows: list[list[Any]]) -> None:
    """The audit rows in the API's own INSERT (clinic.audit.insert_statement): an array for
    each column that differs between the rows (the object's id always), one value for each
    column they share."""
    if not rows:
        return
    columns = dict(zip(_CAPTURED, zip(*rows, strict=True), strict=True))
    columns["detail"] = tuple(json.dumps(detail) for detail in columns["detail"])
    varying: dict[str, list[Any]] = {}
    shared: dict[str, Any] = {"at": timezone.now(), "request_id": "", "outcome": "success"}
    for name, values in columns.items():
        if name == "object_id" or len(set(values)) > 1:
            varying[name] = list(values)
        else:
            shared[name] = values[0]
    cursor.execute(audit.insert_statement(tuple(varying)), {**varying, **shared})


def _read(target: dict[str, Any]) -> HttpResponse:
    with transaction.atomic(), connection.cursor() as cursor:
        results = _selects(cursor, target["selects"])
        _insert_audit(cursor, target["audit"])
    return JsonResponse({"results": results}, encoder=DjangoJSONEncoder)


def _booking(spec: dict[str, Any], target: dict[str, Any]) -> HttpResponse:
    """A booking's SELECTs (the captured booking's, on this target's patient, series and
    provider), then its INSERTs: the session and its audit event."""
    session_id = time_ordered_uuid()
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        substitute = dict(zip(spec["captured_ids"], target["ids"], strict=True))
        results = _selects(cursor, spec["selects"], substitute)
        clinic_id, series_id, patient_id, provider_id, actor_id, starts_at, ends_at = target["row"]
        cursor.execute(
            "INSERT INTO scheduling_session (id, clinic_id, series_id, patient_id, provider_id,"
            " starts_at, ends_at, status, flags, cancel_reason, created_by_id, created_at,"
            " updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, 'booked', %s, '', %s, %s, %s)",
            [
                session_id,
                clinic_id,
                series_id,
                patient_id,
                provider_id,
                starts_at,
                ends_at,
                target["flags"],
                actor_id,
                now,
                now,
            ],
        )
        _insert_audit(
            cursor,
            [
                [
                    clinic_id,
                    actor_id,
                    target["actor_label"],
                    "session.book",
                    "session",
                    str(session_id),
                    patient_id,
                    {"series": series_id, "starts_at": starts_at},
                ]
            ],
        )
    return JsonResponse({"id": session_id, "selects": len(results)}, status=201)


def _treatment(spec: dict[str, Any], target: dict[str, Any]) -> HttpResponse:
    """A treatment's SELECTs (the captured one's, on this target's ids), then its writes: one
    cartridge taken, the record and its depths, the aftercare plan, the session completed, and
    the audit events in one INSERT."""
    record_id = time_ordered_uuid()
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        substitute = dict(zip(spec["captured_ids"], target["ids"], strict=True))
        results = _selects(cursor, spec["selects"], substitute)
        clinic_id, session_id, patient_id, provider_id, lot_id, _series = target["row"]
        cursor.execute(
            "UPDATE treatments_tiplot SET quantity_used = quantity_used + 1"
            " WHERE id = %s AND quantity_used < quantity_received"
            " RETURNING lot_number, expires_on",
            [lot_id],
        )
        lot_number, expires_on = cursor.fetchone()
        cursor.execute(
            "INSERT INTO treatments_treatmentrecord (id, clinic_id, session_id, patient_id,"
            " provider_id, tip_lot_id, lot_number, lot_expires_on, handpiece_serial,"
            " performed_at, notes, depth_override_reason, recorded_at, acknowledged_warnings)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, '', %s, '', '', %s, '{}')",
            [
                record_id,
                clinic_id,
                session_id,
                patient_id,
                provider_id,
                lot_id,
                lot_number,
                expires_on,
                now,
                now,
            ],
        )
        cursor.execute(
            "INSERT INTO treatments_treatmentdepth (record_id, area, depth_mm)"
            " VALUES (%s, 'cheeks', 1.00), (%s, 'forehead', 0.50)",
            [record_id, record_id],
        )
        cursor.execute(
            "INSERT INTO treatments_aftercareplan (id, clinic_id, session_id, record_id,"
            " template_id, steps, created_at)"
            " SELECT %s, %s, %s, %s, id, steps, %s FROM treatments_aftercaretemplate"
            " WHERE clinic_id = %s AND is_default",
            [time_ordered_uuid(), clinic_id, session_id, record_id, now, clinic_id],
        )
        cursor.execute(
            "UPDATE scheduling_session SET status = 'completed', completed_at = %s,"
            " flags = '{}', updated_at = %s WHERE id = %s AND status = 'checked_in'",
            [now, now, session_id],
        )
        _insert_audit(
            cursor,
            [
                [
                    clinic_id,
                    provider_id,
                    target["actor_label"],
                    "session.complete",
                    "session",
                    session_id,
                    patient_id,
                    {},
                ],
                [
                    clinic_id,
                    provider_id,
                    target["actor_label"],
                    "treatment.record",
                    "treatment_record",
                    str(record_id),
                    patient_id,
                    {"session": session_id, "lot_number": lot_number, "acknowledged_warnings": []},
                ],
            ],
        )
    return JsonResponse({"id": record_id, "selects": len(results)}, status=201)
