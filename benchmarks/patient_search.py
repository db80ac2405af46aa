"""Benchmark: `GET /patients/?search=` over 100,000 patients of one clinic.

    .venv/bin/python -m benchmarks.patient_search [--patients 100000] [--repeat 20]

Uses its own database (`<DATABASE_URL name>_bench`, created and migrated here), fills it with
COPY, then times the search selector's SQL for typical front-desk terms, with the trigram
indexes and with index scans switched off, and prints the plan's access path. Figures, not a
pass/fail: the point is to see that search does not read the whole table.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid
from datetime import date, timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")
_base_url = os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/clinic")
os.environ["DATABASE_URL"] = (
    _base_url.rsplit("/", 1)[0] + "/" + (_base_url.rsplit("/", 1)[1] + "_bench")
)

import subprocess  # noqa: E402
import sys  # noqa: E402

subprocess.run([sys.executable, "scripts/ensure_database.py"], check=True)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from clinic.models import Clinic  # noqa: E402
from patients.models import Patient  # noqa: E402
from patients.selectors import patients_of_clinic, search_patients  # noqa: E402

FIRST = [
    "Jane",
    "John",
    "Maria",
    "Wei",
    "Aisha",
    "Liam",
    "Olivia",
    "Noah",
    "Emma",
    "Lucas",
    "Sofia",
    "Mateo",
    "Chloe",
    "Arjun",
    "Fatima",
    "Hiro",
    "Zoe",
    "Omar",
    "Ines",
    "Leo",
]
LAST = [
    "Smith",
    "Garcia",
    "Nguyen",
    "Okafor",
    "Kowalski",
    "Rossi",
    "Tanaka",
    "Dubois",
    "Hernandez",
    "Johansson",
    "Patel",
    "O'Brien",
    "Novak",
    "Silva",
    "Kim",
    "Moreau",
]


def fill(count: int) -> Clinic:
    clinic = Clinic.objects.filter(name="Benchmark clinic").first()
    if clinic and Patient.objects.filter(clinic=clinic).count() >= count:
        return clinic
    clinic = clinic or Clinic.objects.create(name="Benchmark clinic", timezone="UTC")
    rng = random.Random(42)  # noqa: S311 - repeatable test data
    with (
        connection.cursor() as cursor,
        cursor.connection.cursor().copy(
            "COPY patients_patient (id, clinic_id, first_name, last_name, date_of_birth, email,"
            " phone, fitzpatrick_type, sms_opt_in, email_opt_in, created_at, updated_at)"
            " FROM STDIN"
        ) as copy,
    ):
        now = django.utils.timezone.now()
        for n in range(count):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            suffix = f"{first}{last}{n}".lower().replace("'", "")
            copy.write_row(
                (
                    uuid.uuid4(),
                    clinic.id,
                    first,
                    f"{last}{n % 997}",
                    date(1950, 1, 1) + timedelta(days=rng.randrange(18000)),
                    f"{suffix}@example.com",
                    f"+1202{n:07d}",
                    rng.randint(1, 6),
                    True,
                    True,
                    now,
                    now,
                )
            )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE patients_patient")
    return clinic


def timed(sql: str, params: list, repeat: int) -> tuple[float, int]:
    times, rows = [], 0
    with connection.cursor() as cursor:
        for _ in range(repeat):
            start = time.perf_counter()
            cursor.execute(sql, params)
            rows = len(cursor.fetchall())
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), rows


def plan(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        lines = [row[0] for row in cursor.fetchall()]
    scans = [line.strip() for line in lines if "Scan" in line]
    return scans[0].split("  (")[0] if scans else lines[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    clinic = fill(args.patients)
    total = Patient.objects.filter(clinic=clinic).count()
    print(f"patients in clinic: {total} (ready in {time.perf_counter() - started:.1f} s)")
    print(f"{'term':<22}{'rows':>6}{'indexed ms':>12}{'no-index ms':>13}  access path")
    for term in ["okafor512", "jane", "maria rossi", "aishanovak", "2020004242", "@example"]:
        queryset = search_patients(patients_of_clinic(clinic.id), term)[:50]
        sql, params = queryset.query.sql_with_params()
        indexed, rows = timed(sql, list(params), args.repeat)
        path = plan(sql, list(params))
        with connection.cursor() as cursor:
            cursor.execute("SET enable_bitmapscan = off")
            cursor.execute("SET enable_indexscan = off")
        unindexed, _ = timed(sql, list(params), max(3, args.repeat // 5))
        with connection.cursor() as cursor:
            cursor.execute("RESET enable_bitmapscan")
            cursor.execute("RESET enable_indexscan")
        print(f"{term:<22}{rows:>6}{indexed:>12.2f}{unindexed:>13.2f}  {path}")


if __name__ == "__main__":
    main()
