"""Benchmark: the tip-usage CSV export over 1,000,000 treatment records of one clinic.

    .venv/bin/python -m benchmarks.tip_usage_export [--records 1000000] [--repeat 3]

Uses its own database (`<DATABASE_URL name>_bench`, created and migrated here) and fills it
once with COPY (sessions, records with their hash chain, depths). Then it times, each in a
fresh process so peak memory is the export's own:

- the HTTP path: `GET /api/v1/exports/tip-usage.csv` through Django's test client, the whole
  middleware and DRF stack, the streamed body read into a sink;
- `manage.py export_tip_usage` writing to /dev/null (progress bar on);
- `psql \\copy` of the very same SELECT (same time zone setting) to /dev/null;

and prints rows per second, the ratio to psql (goal: at least 0.7), and peak RSS of the HTTP
path at a tenth of the rows and at all of them (flat memory shows as the same figure), with the
Python heap's peak from tracemalloc. Last, `verify_audit`'s walk of the same chain. Figures,
not a pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
import uuid
from datetime import UTC, date, datetime, timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")
os.environ.setdefault("DJANGO_DEBUG", "false")
_base_url = os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/clinic")
if not _base_url.endswith("_bench"):
    _base_url = _base_url + "_bench"
os.environ["DATABASE_URL"] = _base_url
CHILD = "--child" in sys.argv
if not CHILD:
    subprocess.run([sys.executable, "scripts/ensure_database.py"], check=True)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402
from knox.models import AuthToken  # noqa: E402

from clinic import audit  # noqa: E402
from clinic.models import Clinic, Handpiece, Role, User  # noqa: E402
from treatments import exports  # noqa: E402
from treatments.integrity import TREATMENT_CHAIN, record_canonical  # noqa: E402
from treatments.models import TipLot, TreatmentRecord  # noqa: E402

CLINIC = "Tip usage benchmark clinic"
PROVIDERS = 20
PATIENTS_PER_RECORD = 10  # each patient has about ten treated sessions
LOTS_PER_RECORD = 1000  # a lot of 1000 cartridges
BASE = datetime(2022, 1, 3, 13, 0, tzinfo=UTC)  # 08:00 in New York
URL = "/api/v1/exports/tip-usage.csv"


def maxrss_kb() -> int:
    """This process's peak RSS. VmHWM, not getrusage: Linux carries ru_maxrss over from the
    parent through fork and exec, so a child would report the (large) parent's."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def performed_at(i: int) -> datetime:
    # Twenty providers in parallel, one 30-minute session each after the other.
    return BASE + timedelta(minutes=30 * (i // PROVIDERS)) + timedelta(minutes=5)


def fill(count: int) -> Clinic:
    clinic = Clinic.objects.filter(name=CLINIC).first()
    if clinic and TreatmentRecord.objects.filter(clinic=clinic).count() >= count:
        return clinic
    if clinic:
        raise SystemExit(f"{CLINIC} exists with fewer records: drop the _bench database first")
    started = time.perf_counter()
    now = timezone.now()
    with transaction.atomic():
        clinic = Clinic.objects.create(name=CLINIC, timezone="America/New_York")
        providers = User.objects.bulk_create(
            User(
                clinic=clinic,
                username=f"bench_provider_{n}",
                full_name=f"Dr Bench {n}",
                role=Role.PROVIDER,
                password="!",  # noqa: S106 - unusable
            )
            for n in range(PROVIDERS)
        )
        User.objects.create(
            clinic=clinic,
            username="bench_auditor",
            role=Role.AUDITOR,
            password="!",  # noqa: S106
        )
        handpieces = Handpiece.objects.bulk_create(
            Handpiece(clinic=clinic, serial_number=f"SP-B{n:04d}") for n in range(PROVIDERS)
        )
        lots = TipLot.objects.bulk_create(
            TipLot(
                clinic=clinic,
                lot_number=f"BL{n:05d}",
                gtin="00812345000019",
                expires_on=date(2025, 1, 1) + timedelta(days=n),
                quantity_received=LOTS_PER_RECORD,
                quantity_used=LOTS_PER_RECORD,
                received_by=providers[0],
            )
            for n in range(max(1, count // LOTS_PER_RECORD + 1))
        )
        patients = [uuid.uuid4() for _ in range(max(1, count // PATIENTS_PER_RECORD))]
        series = [uuid.uuid4() for _ in patients]
        with connection.cursor() as cursor:
            # Trusted, generated rows: no per-row FK or chain triggers (the chain is computed
            # here, in Python, exactly as the trigger would); constraints still apply.
            cursor.execute("SET LOCAL session_replication_role = replica")
            raw = cursor.connection
            with raw.cursor().copy(
                "COPY patients_patient (id, clinic_id, first_name, last_name, date_of_birth,"
                " email, phone, fitzpatrick_type, sms_opt_in, email_opt_in, created_at,"
                " updated_at) FROM STDIN"
            ) as copy:
                for n, patient in enumerate(patients):
                    copy.write_row(
                        (patient, clinic.id, "Pat", f"Bench{n}", date(1990, 1, 1), "", "", 3,
                         False, False, now, now)
                    )  # fmt: skip
            with raw.cursor().copy(
                "COPY scheduling_series (id, clinic_id, patient_id, indication,"
                " planned_sessions, interval_days, status, created_by_id, created_at, updated_at)"
                " FROM STDIN"
            ) as copy:
                for patient, one in zip(patients, series, strict=True):
                    copy.write_row(
                        (one, clinic.id, patient, "acne_scars", 6, 30, "active", providers[0].id,
                         now, now)
                    )  # fmt: skip
            sessions = [uuid.uuid4() for _ in range(count)]
            with raw.cursor().copy(
                "COPY scheduling_session (id, clinic_id, series_id, patient_id, provider_id,"
                " starts_at, ends_at, status, flags, cancel_reason, completed_at, created_by_id,"
                " created_at, updated_at) FROM STDIN"
            ) as copy:
                for i, session in enumerate(sessions):
                    starts = performed_at(i) - timedelta(minutes=5)
                    p = i % len(patients)
                    copy.write_row(
                        (session, clinic.id, series[p], patients[p], providers[i % PROVIDERS].id,
                         starts, starts + timedelta(minutes=30), "completed", [], "",
                         starts + timedelta(minutes=25), providers[i % PROVIDERS].id, now, now)
                    )  # fmt: skip
            previous = audit.GENESIS_HASH
            depths_rows = []
            with raw.cursor().copy(
                "COPY treatments_treatmentrecord (id, clinic_id, session_id, patient_id,"
                " provider_id, tip_lot_id, lot_number, lot_expires_on, handpiece_id,"
                " handpiece_serial, performed_at, notes, depth_override_reason, recorded_at,"
                " sequence, previous_hash, hash) FROM STDIN"
            ) as copy:
                for i, session in enumerate(sessions):
                    lot, handpiece = lots[i // LOTS_PER_RECORD], handpieces[i % PROVIDERS]
                    depths = [["cheeks", ("0.50", "1.00", "1.25", "1.50")[i % 4]],
                              ["forehead", "0.50"]]  # fmt: skip
                    columns = (
                        uuid.uuid4(), clinic.id, session, patients[i % len(patients)],
                        providers[i % PROVIDERS].id, lot.id, lot.lot_number, lot.expires_on,
                        handpiece.id, handpiece.serial_number, performed_at(i), "", "",
                        performed_at(i) + timedelta(minutes=10),
                    )  # fmt: skip
                    digest = audit.chain_hash(
                        previous, record_canonical((*columns, depths), sequence=i + 1)
                    )
                    copy.write_row((*columns, i + 1, previous, digest))
                    previous = digest
                    depths_rows.extend((columns[0], area, mm) for area, mm in depths)
            with raw.cursor().copy(
                "COPY treatments_treatmentdepth (record_id, area, depth_mm) FROM STDIN"
            ) as copy:
                for row in depths_rows:
                    copy.write_row(row)
    with connection.cursor() as cursor:
        for table in ("scheduling_session", "treatments_treatmentrecord",
                      "treatments_treatmentdepth", "treatments_tiplot", "clinic_user"):  # fmt: skip
            cursor.execute(f"VACUUM ANALYZE {table}")
    print(f"filled {count} records in {time.perf_counter() - started:.0f} s")
    return clinic


# --- Measured in a child process -------------------------------------------------------------


def child(mode: str, clinic_id: str, to: str | None, trace: bool) -> None:
    clinic = Clinic.objects.get(pk=clinic_id)
    auditor = User.objects.get(username="bench_auditor")
    _instance, token = AuthToken.objects.create(user=auditor)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    # Warm up (URL conf, views, the command's module) with an export that matches nothing.
    if mode == "http":
        b"".join(client.get(URL, {"lot": "no-such-lot"}).streaming_content)
    elif mode == "command":
        with open(os.devnull, "w") as devnull:
            args = ["--clinic", clinic_id, "--lot", "no-such-lot", "--output", os.devnull]
            call_command("export_tip_usage", *args, "--no-verify", stderr=devnull)
    before = maxrss_kb()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    if mode == "http":
        response = client.get(URL, {"to": to} if to else {})
        if response.status_code != 200:
            raise SystemExit(f"export answered {response.status_code}")
        size = lines = 0
        for chunk in response.streaming_content:
            size += len(chunk)
            lines += chunk.count(b"\n")
        rows = lines - 1
    elif mode == "command":
        with open(os.devnull, "w") as devnull:
            args = ["--clinic", clinic_id, "--output", os.devnull, "--no-verify"]
            call_command("export_tip_usage", *args, stderr=devnull)
        rows = TreatmentRecord.objects.filter(clinic=clinic).count()
    elif mode == "verify":
        report = audit.verify_chain(TREATMENT_CHAIN, clinic.id)
        if report.broken is not None:
            raise SystemExit(f"chain broken: {report.broken}")
        rows = report.length
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": seconds,
                "rss_before_kb": before,
                "rss_peak_kb": maxrss_kb(),
                "traced_peak_kb": peak and peak // 1024,
            }
        )
    )


def run_child(mode: str, clinic: Clinic, to: str | None = None, trace: bool = False) -> dict:
    command = [sys.executable, "-m", "benchmarks.tip_usage_export", "--child", mode,
               "--clinic", str(clinic.id)]  # fmt: skip
    if to:
        command += ["--to", to]
    if trace:
        command.append("--trace")
    result = subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603
    return json.loads(result.stdout.strip().splitlines()[-1])


def psql_copy(clinic: Clinic) -> dict:
    """The export's own SELECT through `psql \\copy`, with the same time zone setting."""
    import psycopg

    query = exports.tip_usage_query(clinic, used_from=None, used_to=None, lot=None)
    sql, params = exports.tip_usage_select(query)
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        literal = psycopg.ClientCursor(conn).mogrify(sql, params)
    copy = f"\\copy ({' '.join(literal.split())}) TO '{os.devnull}' WITH (FORMAT csv, HEADER)"
    started = time.perf_counter()
    subprocess.run(  # noqa: S603
        ["psql", "-X", "-q", os.environ["DATABASE_URL"],  # noqa: S607
         "-c", f"SET TIME ZONE '{clinic.timezone}'", "-c", copy],
        check=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    return {"rows": TreatmentRecord.objects.filter(clinic=clinic).count(), "seconds": seconds}


def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda run: run["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["http", "command", "verify"])
    parser.add_argument("--clinic")
    parser.add_argument("--to")
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.clinic, args.to, args.trace)
        return

    call_command("migrate", verbosity=0)
    clinic = fill(args.records)
    total = TreatmentRecord.objects.filter(clinic=clinic).count()
    print(f"treatment records in clinic: {total}; best of {args.repeat} runs each")
    psql = best([psql_copy(clinic) for _ in range(args.repeat)])
    http = best([run_child("http", clinic) for _ in range(args.repeat)])
    command = best([run_child("command", clinic) for _ in range(args.repeat)])
    psql_rate = psql["rows"] / psql["seconds"]
    print(f"{'path':<34}{'rows':>10}{'seconds':>9}{'rows/s':>11}{'vs psql':>9}")
    for name, run in [
        ("psql \\copy (same SELECT)", psql),
        ("HTTP GET tip-usage.csv", http),
        ("manage.py export_tip_usage", command),
    ]:
        rate = run["rows"] / run["seconds"]
        print(
            f"{name:<34}{run['rows']:>10}{run['seconds']:>9.2f}{rate:>11,.0f}"
            f"{rate / psql_rate:>9.2f}"
        )

    # Memory: the same export at a tenth of the rows and at all of them.
    tenth = performed_at(total // 10).astimezone(clinic.zone).date().isoformat()
    print("peak memory of the HTTP path (fresh process each):")
    for label, to in [("a tenth", tenth), ("all", None)]:
        run = run_child("http", clinic, to=to)
        traced = run_child("http", clinic, to=to, trace=True)
        print(
            f"  {label:<8} {run['rows']:>9} rows: RSS {run['rss_before_kb'] / 1024:.1f} MiB before,"
            f" peak {run['rss_peak_kb'] / 1024:.1f} MiB; Python heap peak during the export"
            f" (tracemalloc) {traced['traced_peak_kb']} KiB"
        )
    verify = run_child("verify", clinic)
    print(
        f"verify_audit walk of the chain: {verify['rows']} records in {verify['seconds']:.1f} s"
        f" ({verify['rows'] / verify['seconds']:,.0f} rows/s)"
    )


if __name__ == "__main__":
    main()
