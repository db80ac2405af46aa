"""One dataset's run, in its own process (DATABASE_URL is the dataset's database): seed it if
needed, pick the targets, capture the floor's SQL with the API's own views, serve both through
gunicorn, measure, and print one JSON line of figures."""

from __future__ import annotations

import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from http.client import HTTPConnection
from typing import Any

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402
from knox.models import AuthToken  # noqa: E402

from benchmarks.scale import seed  # noqa: E402
from benchmarks.scale.report import ENDPOINTS, WRITES  # noqa: E402
from clinic.models import AuditEvent, Clinic, Role, User  # noqa: E402
from scheduling.models import Session, SessionStatus  # noqa: E402
from treatments import exports  # noqa: E402
from treatments.models import TipLot  # noqa: E402

READ_TARGETS = 20


def api_targets(sessions: int, clinics: int, targets: int) -> dict[str, Any]:
    """Each endpoint's requests (method, path, body, token) on the large clinic."""
    plan = seed.shapes(sessions, clinics)
    main = plan[0]
    clinic = Clinic.objects.get(name=seed.clinic_name(0))
    today = clinic.today()
    admin = User.objects.get(username="bench0_admin")
    providers = list(User.objects.filter(clinic=clinic, role=Role.PROVIDER).order_by("username"))
    providers.sort(key=lambda user: int(user.username.rsplit("provider", 1)[1]))
    tokens = {user.id: AuthToken.objects.create(user=user)[1] for user in [admin, *providers]}
    bearer = tokens[admin.id]
    spread = [k * main.patients // READ_TARGETS for k in range(READ_TARGETS)]
    past_days = main.days - min(seed.FUTURE_DAYS, main.days // 4)
    past = [seed._day(main, k * past_days // READ_TARGETS, today) for k in range(READ_TARGETS)]
    past_sessions = [
        k * min(main.sessions, past_days * main.per_day) // READ_TARGETS
        for k in range(READ_TARGETS)
    ]
    lots = list(
        TipLot.objects.filter(clinic=clinic, quantity_used__gt=0).order_by("lot_number")[
            :READ_TARGETS
        ]
    )

    def get(path: str, **query: Any) -> dict[str, Any]:
        return {
            "method": "GET",
            "path": path + ("?" + urllib.parse.urlencode(query) if query else ""),
            "token": bearer,
        }

    reads = {
        "patient_search": [
            get("/api/v1/patients/", search=seed.surname(k)) for k in range(READ_TARGETS)
        ],
        "day_view": [get("/api/v1/sessions/", date=d.isoformat(), page_size=200) for d in past],
        "series_detail": [get(f"/api/v1/series/{seed.key('series', 0, n, 0)}/") for n in spread],
        "session_detail": [
            get(f"/api/v1/sessions/{seed.key('session', 0, i)}/") for i in past_sessions
        ],
        "eligibility": [
            get(f"/api/v1/patients/{seed.key('patient', 0, n)}/eligibility/") for n in spread
        ],
        "tip_lot_usage": [get(f"/api/v1/tip-lots/{lot.id}/usage/") for lot in lots],
        "audit_events": [get("/api/v1/audit-events/") for _ in range(READ_TARGETS)],
        "availability": [
            get(
                "/api/v1/availability/",
                provider=providers[k % len(providers)].id,
                **{"from": (today + timedelta(days=1 + k % 20)).isoformat()},
                duration_minutes=30,
            )
            for k in range(READ_TARGETS)
        ],
    }
    # Writes: the targets' fresh series, booked 40 days out and beyond, 30 minutes each, one
    # provider after the other (each slot once); today's checked-in sessions treated.
    half = targets // 2
    bookings = []
    for b in range(half):
        n = main.patients + half + b
        provider = providers[b % len(providers)]
        day = today + timedelta(days=40 + b // (len(providers) * 24))
        starts_at = timezone.datetime.combine(day, timezone.datetime.min.time(), clinic.zone)
        starts_at += timedelta(hours=8, minutes=30 * ((b // len(providers)) % 24))
        bookings.append(
            {
                "method": "POST",
                "path": "/api/v1/sessions/",
                "body": {
                    "series": str(seed.key("series", 0, n, 0)),
                    "provider": str(provider.id),
                    "starts_at": starts_at.isoformat(),
                    "duration_minutes": 30,
                },
                "token": bearer,
                "ids": [
                    str(seed.key("patient", 0, n)),
                    str(seed.key("series", 0, n, 0)),
                    str(provider.id),
                ],
                "row": [
                    str(clinic.id),
                    str(seed.key("series", 0, n, 0)),
                    str(seed.key("patient", 0, n)),
                    str(provider.id),
                    str(admin.id),
                    starts_at.isoformat(),
                    (starts_at + timedelta(minutes=30)).isoformat(),
                ],
                "actor_label": admin.username,
            }
        )
    lot = TipLot.objects.filter(clinic=clinic).order_by("-lot_number").first()
    treatments = []
    for t in range(half):
        n = main.patients + t
        provider = providers[t % len(providers)]
        session = seed.key("session", 0, "today", t)
        treatments.append(
            {
                "method": "POST",
                "path": f"/api/v1/sessions/{session}/treatment/",
                "body": {
                    "tip_lot": str(lot.id),
                    "depths": [
                        {"area": "cheeks", "depth_mm": "1.00"},
                        {"area": "forehead", "depth_mm": "0.50"},
                    ],
                },
                "token": tokens[provider.id],
                "ids": [
                    str(session),
                    str(seed.key("patient", 0, n)),
                    str(seed.key("series", 0, n, 0)),
                    str(provider.id),
                ],
                "row": [
                    str(clinic.id),
                    str(session),
                    str(seed.key("patient", 0, n)),
                    str(provider.id),
                    str(lot.id),
                    str(seed.key("series", 0, n, 0)),
                ],
                "actor_label": provider.username,
            }
        )
    # A target is used once: a rerun on the same dataset takes the ones still fresh.
    booked = set(
        Session.objects.filter(clinic=clinic, series_id__in=[b["ids"][1] for b in bookings])
        .values_list("series_id", flat=True)
        .distinct()
    )
    bookings = [b for b in bookings if uuid.UUID(b["ids"][1]) not in booked]
    in_chair = set(
        Session.objects.filter(
            pk__in=[t["ids"][0] for t in treatments], status=SessionStatus.CHECKED_IN
        ).values_list("id", flat=True)
    )
    treatments = [t for t in treatments if uuid.UUID(t["ids"][0]) in in_chair]
    random.Random(16).shuffle(bookings)
    random.Random(16).shuffle(treatments)
    return {"reads": reads, "booking": bookings, "treatment": treatments, "clinic": clinic}


# --- The floor's SQL, captured with the API's own views ----------------------------------------


def _kept(sql: str) -> bool:
    return sql.lstrip().upper().startswith("SELECT") and "pg_advisory" not in sql


def capture(request: dict[str, Any]) -> tuple[int, list[str], list[list[Any]], Any]:
    """Run one request in-process: its status, its SELECTs as executed, the audit rows it wrote
    (clinic, actor, label, action, type, object, patient, detail), and its body."""
    client = Client(HTTP_AUTHORIZATION=f"Bearer {request['token']}")
    guid = uuid.uuid4().hex
    with CaptureQueriesContext(connection) as captured:
        if request["method"] == "GET":
            response = client.get(request["path"], HTTP_X_REQUEST_ID=guid)
        else:
            response = client.post(
                request["path"],
                request["body"],
                content_type="application/json",
                HTTP_X_REQUEST_ID=guid,
            )
    selects = [query["sql"] for query in captured.captured_queries if _kept(query["sql"])]
    rows = [
        [
            str(e.clinic_id),
            str(e.actor_id) if e.actor_id else None,
            e.actor_label,
            e.action,
            e.object_type,
            e.object_id,
            str(e.patient_id) if e.patient_id else None,
            e.detail,
        ]
        for e in AuditEvent.objects.filter(request_id=guid).order_by("sequence")
    ]
    return response.status_code, selects, rows, response.json()


def floor_specs(targets: dict[str, Any]) -> dict[str, Any]:
    specs: dict[str, Any] = {}
    for name, requests in targets["reads"].items():
        specs[name] = {"targets": []}
        for request in requests:
            status, selects, rows, body = capture(request)
            if status != 200:
                raise SystemExit(f"{name} {request['path']} answered {status}: {body}")
            specs[name]["targets"].append({"selects": selects, "audit": rows})
    for name in WRITES:
        warm_up = targets[name].pop()
        status, selects, _rows, body = capture(warm_up)
        if status != 201:
            raise SystemExit(f"{name} {warm_up['path']} answered {status}: {body}")
        specs[name] = {"selects": selects, "captured_ids": warm_up["ids"], "targets": []}
        # Real requests take the first half of the targets, the floor the second.
        mine = targets[name][len(targets[name]) // 2 :]
        for target in mine:
            specs[name]["targets"].append(
                {
                    "ids": target["ids"],
                    "row": target["row"],
                    "flags": [],
                    "actor_label": target["actor_label"],
                }
            )
        targets[name] = targets[name][: len(targets[name]) // 2]
    return specs


# --- gunicorn ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(port: int, specs_path: str, workers: int) -> subprocess.Popen:
    env = {**os.environ, "BENCH_FLOOR_SPECS": specs_path}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "clinic.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    deadline = time.monotonic() + 180  # workers import the app after fork; slow on a loaded machine
    while time.monotonic() < deadline:
        try:
            conn = HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz/")
            if conn.getresponse().status in (200, 503):
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("gunicorn did not answer within 180 s")


def call(port: int, request: dict[str, Any]) -> tuple[float, int, int, bytes]:
    """One request on a fresh connection: seconds, status, query count, body."""
    headers = {"Authorization": f"Bearer {request['token']}"} if request.get("token") else {}
    body = None
    if request["method"] == "POST":
        body = json.dumps(request["body"]).encode()
        headers["Content-Type"] = "application/json"
    started = time.perf_counter()
    conn = HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request(request["method"], request["path"], body=body, headers=headers)
    response = conn.getresponse()
    content = response.read()
    seconds = time.perf_counter() - started
    conn.close()
    return seconds, response.status, int(response.getheader("X-Queries", "-1")), content


def floor_request(name: str, target: int) -> dict[str, Any]:
    return {"method": "GET", "path": f"/floor/{name}/{target}/"}


# --- Measuring ---------------------------------------------------------------------------------


def latency(port: int, targets: dict[str, Any], rounds: int) -> dict[str, Any]:
    """Interleaved: each round asks every endpoint once of the API and once of the floor, in a
    shuffled order, API first on even rounds."""
    samples: dict[tuple[str, str], list[float]] = {}
    queries: dict[tuple[str, str], set[int]] = {}
    failures: list[str] = []
    used = {name: 0 for name in WRITES}
    order = list(ENDPOINTS)
    shuffle = random.Random(7)
    for round_ in range(rounds):
        shuffle.shuffle(order)
        for name in order:
            if name in WRITES:
                k = used[name]
                used[name] += 1
                api, floor = targets[name][k], floor_request(name, k)
            else:
                reads = targets["reads"][name]
                api = reads[round_ % len(reads)]
                floor = floor_request(name, round_ % len(reads))
            pair = [("api", api), ("floor", floor)]
            for side, request in pair if round_ % 2 == 0 else pair[::-1]:
                seconds, status, count, body = call(port, request)
                if status >= 300:
                    failures.append(f"{side} {name} {status}: {body[:300]!r}")
                    continue
                samples.setdefault((name, side), []).append(seconds)
                queries.setdefault((name, side), set()).add(count)
    result = {}
    for (name, side), values in samples.items():
        values.sort()
        result[f"{name}/{side}"] = {
            "p50_ms": statistics.median(values) * 1000,
            "p95_ms": values[min(len(values) - 1, int(len(values) * 0.95))] * 1000,
            "n": len(values),
            "queries": sorted(queries[(name, side)]),
        }
    return {"latency": result, "failures": failures[:20], "used": used}


def _client(port: int, requests: list[dict[str, Any]]) -> int:
    ok = 0
    for request in requests:
        _seconds, status, _count, _body = call(port, request)
        ok += status < 300
    return ok


def throughput(
    port: int, targets: dict[str, Any], used: dict[str, int], clients: int, per_client: int
) -> dict[str, Any]:
    """Requests per second with `clients` clients at once, each sending `per_client` requests."""
    result = {}
    with ProcessPoolExecutor(max_workers=clients) as pool:
        list(pool.map(_client, [port] * clients, [[]] * clients))  # start the workers
        for name in ENDPOINTS:
            for side in ("api", "floor"):
                if name in WRITES:
                    start = used[name]
                    count = min(clients * per_client, len(targets[name]) - start)
                    if side == "api":
                        batch = targets[name][start : start + count]
                    else:
                        batch = [floor_request(name, k) for k in range(start, start + count)]
                else:
                    count = clients * per_client
                    reads = targets["reads"][name]
                    batch = [
                        reads[k % len(reads)]
                        if side == "api"
                        else floor_request(name, k % len(reads))
                        for k in range(count)
                    ]
                if not batch:
                    continue
                shares = [batch[k::clients] for k in range(clients)]
                started = time.perf_counter()
                ok = sum(pool.map(_client, [port] * clients, shares))
                seconds = time.perf_counter() - started
                result[f"{name}/{side}"] = {"rps": ok / seconds, "ok": ok, "sent": len(batch)}
            if name in WRITES:
                used[name] += count
    return result


def export_vs_psql(port: int, clinic: Clinic, token: str, repeat: int = 3) -> dict[str, Any]:
    """The tip-usage CSV of the large clinic through gunicorn against `psql \\copy` of its own
    SELECT (the same session settings: time zone, JIT off), best of `repeat` each."""
    import psycopg

    query = exports.tip_usage_query(clinic, used_from=None, used_to=None, lot=None)
    sql, params = exports.tip_usage_select(query)
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        literal = psycopg.ClientCursor(conn).mogrify(sql, params)
    copy = f"\\copy ({' '.join(literal.split())}) TO '{os.devnull}' WITH (FORMAT csv, HEADER)"
    psql_runs, http_runs, rows = [], [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(
            [
                "psql",
                "-X",
                "-q",
                os.environ["DATABASE_URL"],
                "-c",
                f"SET TIME ZONE '{clinic.timezone}'",
                "-c",
                "SET jit = off",  # as the app's connections (clinic/settings.py)
                "-c",
                copy,
            ],
            check=True,
        )
        psql_runs.append(time.perf_counter() - started)
        started = time.perf_counter()
        conn = HTTPConnection("127.0.0.1", port, timeout=600)
        conn.request(
            "GET", "/api/v1/exports/tip-usage.csv", headers={"Authorization": f"Bearer {token}"}
        )
        response = conn.getresponse()
        lines = 0
        while chunk := response.read(1 << 16):
            lines += chunk.count(b"\n")
        http_runs.append(time.perf_counter() - started)
        rows = lines - 1
    return {"rows": rows, "psql_s": min(psql_runs), "http_s": min(http_runs)}


def overlap_plan(clinic: Clinic) -> str:
    """The plan of booking's overlap read at this scale (for the record)."""
    from scheduling import checks

    provider = User.objects.filter(clinic=clinic, role=Role.PROVIDER).first()
    patient_id = seed.key("patient", 0, 1)
    start = timezone.now() + timedelta(days=3)
    with CaptureQueriesContext(connection) as captured:
        checks.slot_context(
            zone=clinic.zone,
            provider_id=provider.id,
            patient_id=patient_id,
            start=start,
            end=start + timedelta(minutes=30),
        )
    (sql,) = [q["sql"] for q in captured.captured_queries if "scheduling_session" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--clinics", type=int, required=True)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--export", action="store_true")
    parser.add_argument("--seed-only", action="store_true", help="seed if empty, measure nothing")
    args = parser.parse_args(argv)

    log: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    call_command("migrate", verbosity=0)
    # Two writes (API and floor) per round and per throughput request, twice over (bookings,
    # treatments), three times over so the dataset takes two reruns before --reseed.
    targets_needed = 3 * 2 * 2 * (args.rounds + args.clients * args.per_client + 2)
    seeded_targets = seed.seeded(args.sessions, args.clinics)
    if seeded_targets is None:
        log(f"seeding {args.sessions} sessions in {args.clinics} clinics")
        seed.seed(args.sessions, args.clinics, targets=targets_needed, log=log)
        seeded_targets = targets_needed
    else:
        log("dataset already seeded")
    if args.seed_only:
        print(json.dumps({"dataset": {"sessions": args.sessions, "clinics": args.clinics}}))
        return
    log("verifying the large clinic's chains")
    from clinic import audit

    clinic = Clinic.objects.get(name=seed.clinic_name(0))
    broken = [str(r.broken) for r in audit.verify(clinic.id) if r.broken]
    if broken:
        raise SystemExit(f"seeded chain broken: {broken}")
    targets = api_targets(args.sessions, args.clinics, seeded_targets)
    for name in WRITES:
        if len(targets[name]) < targets_needed // 6:
            raise SystemExit(f"too few fresh {name} targets left: rerun with --reseed")
    log("capturing the floor's SQL")
    specs = floor_specs(targets)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(specs, file)
    port = free_port()
    server = start_gunicorn(port, file.name, args.workers)
    try:
        log(f"gunicorn on port {port}: latency, {args.rounds} interleaved rounds")
        figures = latency(port, targets, args.rounds)
        log(f"throughput, {args.clients} clients")
        figures["throughput"] = throughput(
            port, targets, figures.pop("used"), args.clients, args.per_client
        )
        if args.export:
            log("tip-usage export against psql \\copy")
            admin_token = targets["reads"]["audit_events"][0]["token"]
            figures["export"] = export_vs_psql(port, targets["clinic"], admin_token)
    finally:
        server.terminate()
        server.wait(timeout=30)
        os.unlink(file.name)
    figures["overlap_plan"] = overlap_plan(clinic)
    figures["dataset"] = {"sessions": args.sessions, "clinics": args.clinics}
    print(json.dumps(figures))


if __name__ == "__main__":
    main(sys.argv[1:])
