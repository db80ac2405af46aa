"""Where one measured request's time goes: cProfile of the API's WSGI handler, in-process.

    DATABASE_URL=postgres://root@127.0.0.1:5432/clinic_scale_small \\
    DJANGO_SETTINGS_MODULE=benchmarks.scale.settings \\
        .venv/bin/python -m benchmarks.scale.profile series_detail --repeat 300

Runs against a dataset `make bench` seeded (seeds the 10,000-session shape if the database is
empty). Requests go through Django's WSGI handler with the benchmark's middleware, without
gunicorn or a socket: what is left is the API's own Python and its round trips to PostgreSQL.
Prints mean milliseconds per request, then the functions with the most time of their own and
the most time under them; with --time, no profiler: each request's wall time and this
process's CPU time (the Python that separates the API from its floor, without PostgreSQL's
share, so it varies much less than wall time on a shared machine) and the time spent in the
garbage collector's collections. The handler's process is settled as clinic.wsgi settles a web
worker (clinic/memory.py); --unsettled keeps Python's collector as it starts. A write consumes
one fresh target per repetition. With --floor (reads), the same for the request's floor (its
SELECTs as captured from the API, and its audit rows in one INSERT, benchmarks/scale/floor.py):
the two `--time` figures side by side are the Python the API spends beyond the floor.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import statistics
import sys
import time
from functools import partial
from typing import Any

import django

django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402

from benchmarks.scale import dataset, floor, seed  # noqa: E402
from benchmarks.scale.report import ENDPOINTS, WRITES  # noqa: E402
from clinic import memory  # noqa: E402


def environ(request: dict[str, Any]) -> dict[str, Any]:
    path, _, query = request["path"].partition("?")
    body = json.dumps(request["body"]).encode() if request["method"] == "POST" else b""
    return {
        "REQUEST_METHOD": request["method"],
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_AUTHORIZATION": f"Bearer {request['token']}",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }


def _time_collections(collections: list[float], phase: str, _info: dict[str, int]) -> None:
    """A gc callback: the start of a collection appends its clock, its end the duration."""
    if phase == "start":
        collections.append(-time.perf_counter())
    elif collections:
        collections[-1] += time.perf_counter()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("endpoint", choices=ENDPOINTS)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--clinics", type=int, default=1)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--time", action="store_true", help="no profiler: p50 and mean of each request's time"
    )
    parser.add_argument("--floor", action="store_true", help="the request's floor instead (reads)")
    parser.add_argument(
        "--unsettled", action="store_true", help="no clinic.memory.settle(): Python's collector"
    )
    args = parser.parse_args(argv)
    if args.floor and args.endpoint in WRITES:
        parser.error("--floor is for reads: a write's floor consumes the write's targets")

    call_command("migrate", verbosity=0)
    targets_seeded = seed.seeded(args.sessions, args.clinics)
    if targets_seeded is None:
        targets_seeded = 4 * args.repeat + 8
        seed.seed(args.sessions, args.clinics, targets=targets_seeded, log=print)
    targets = dataset.api_targets(args.sessions, args.clinics, targets_seeded)
    if args.endpoint in WRITES:
        requests = targets[args.endpoint]
    else:
        reads = targets["reads"][args.endpoint]
        requests = [reads[k % len(reads)] for k in range(args.repeat + 5)]
    if len(requests) < args.repeat + 5:
        raise SystemExit(f"only {len(requests)} fresh {args.endpoint} targets: reseed")
    handler = WSGIHandler()
    if not args.unsettled:
        memory.settle()  # as clinic.wsgi does in the API's workers
    if args.floor:
        captured = [dataset.capture(request) for request in requests[: len(reads)]]
        given = {
            args.endpoint: {"targets": [{"selects": s, "audit": a} for _, s, a, _ in captured]}
        }
        requests = [{**request, "floor": k % len(reads)} for k, request in enumerate(requests)]

    def one(request: dict[str, Any]) -> None:
        if args.floor:
            floor.floor(None, args.endpoint, request["floor"], given).content  # noqa: B018
            return
        status: list[str] = []
        chunks = handler(environ(request), lambda s, _headers, *_: status.append(s))
        b"".join(chunks)
        if not status[0].startswith("2"):
            raise SystemExit(f"{request['path']} answered {status[0]}")

    for request in requests[:5]:  # warm: imports, connection, caches
        one(request)
    measured = requests[5 : 5 + args.repeat]
    if args.time:
        times, cpu = [], []
        collections: list[float] = []
        gc.callbacks.append(partial(_time_collections, collections))
        for request in measured:
            started, started_cpu = time.perf_counter(), time.process_time()
            one(request)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        print(
            f"{args.endpoint}: {len(times)} requests, p50 {statistics.median(times) * 1000:.2f} ms"
            f" (mean {statistics.fmean(times) * 1000:.2f}), this process's CPU p50"
            f" {statistics.median(cpu) * 1000:.2f} ms (mean {statistics.fmean(cpu) * 1000:.2f});"
            " in-process, no profiler"
        )
        spent = sum(collections)
        print(
            f"garbage collector: {len(collections)} collections, {spent * 1000:.1f} ms in all,"
            f" {spent / len(times) * 1000:.2f} ms per request"
        )
        return
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    for request in measured:
        one(request)
    profile.disable()
    seconds = time.perf_counter() - started
    print(
        f"{args.endpoint}: {len(measured)} requests, {seconds / len(measured) * 1000:.2f} ms each"
    )
    print("(under cProfile, which adds its own cost per call)")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(order).print_stats(args.top)
        print(out.getvalue())


if __name__ == "__main__":
    main(sys.argv[1:])
