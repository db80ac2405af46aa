"""The scale benchmark: the API against its floor at clinic-chain scale, through gunicorn.

    make bench                                     # 1,000,000 sessions (and the 10,000 set)
    .venv/bin/python -m benchmarks.scale --sessions 100000     # a quicker run

Seeds (once; COPY) `<DATABASE_URL name>_scale` with `--sessions` sessions in `--clinics`
clinics and `<name>_scale_small` with `--small-sessions` in one clinic (benchmarks/scale/seed.py
says what is in them), both before anything is measured, and has PostgreSQL write the seeded
pages out (CHECKPOINT): measured right after its own seeding, the large set ran under the
writeback of gigabytes, and its floors' p50 came out 1.3 to 1.5 times the small set's. Then for
each: serves the API and the floor (benchmarks/scale/floor.py)
through one gunicorn on a free port, measures p50/p95 and query counts of ten requests
interleaved with their floors, 8-client throughput of both, and (large set) the tip-usage
export against `psql \\copy`. Prints one table with the ratios and the goals of issue 16.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import environ

from benchmarks.scale.report import table


def database_url(suffix: str) -> str:
    url = os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/clinic")
    name = environ.Env.db_url_config(url)["NAME"]
    if name.endswith("_test") or name.startswith("test_"):
        raise SystemExit("DATABASE_URL names a test database: the benchmark uses its own")
    return url.rsplit("/", 1)[0] + "/" + name + suffix


def drop(url: str) -> None:
    import psycopg
    from psycopg import sql

    name = environ.Env.db_url_config(url)["NAME"]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def checkpoint(url: str) -> None:
    """Write out what seeding left dirty, so that no measurement pays for it (needs a
    superuser or pg_checkpoint; without either the measurement starts at once)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            print("no CHECKPOINT (not a superuser): measuring as seeded", file=sys.stderr)


def run(url: str, args: list[str], reseed: bool = False) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "benchmarks.scale.settings",
        "DJANGO_DEBUG": "false",
        # The API's per-request INFO lines (django_guid) are not what is measured.
        "LOG_LEVEL": "WARNING",
    }
    if reseed:
        drop(url)
    subprocess.run([sys.executable, "scripts/ensure_database.py"], check=True, env=env)
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale.dataset", *args],
        check=True, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--clinics", type=int, default=100)
    parser.add_argument("--small-sessions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=60, help="interleaved rounds (latency)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=20, help="requests per client")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--reseed", action="store_true", help="drop and seed the datasets")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    common = ["--rounds", str(args.rounds), "--clients", str(args.clients),
              "--per-client", str(args.per_client), "--workers", str(args.workers)]  # fmt: skip
    sets = {
        "small": (database_url("_scale_small"), ["--sessions", str(args.small_sessions),
                                                 "--clinics", "1", *common]),
        "large": (database_url("_scale"), ["--sessions", str(args.sessions), "--clinics",
                                           str(args.clinics), "--export", *common]),
    }  # fmt: skip
    for url, dataset_args in sets.values():
        run(url, [*dataset_args, "--seed-only"], args.reseed)
    checkpoint(sets["large"][0])
    small = run(*sets["small"])
    large = run(*sets["large"])
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"large": large, "small": small}, file, indent=1)
    print(table(large, small))


if __name__ == "__main__":
    main()
