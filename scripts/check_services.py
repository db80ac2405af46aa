"""Fail early, and say how to fix it, when PostgreSQL or Redis cannot be reached."""

import os
import sys

import environ
import psycopg
import redis

DEFAULT_DATABASE_URL = "postgres://root@127.0.0.1:5432/clinic"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

HOW_TO_START = """
Start the services, then run this command again:
  - with Docker:       docker compose up -d postgres redis
  - on a Debian host:  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start
                       redis-server --daemonize yes --bind 127.0.0.1 --port 6379
Or point DATABASE_URL / REDIS_URL at running servers."""


def check_postgres(url: str) -> str | None:
    cfg = environ.Env.db_url_config(url)
    try:
        # Connect to the maintenance database: the clinic database may not exist yet.
        with psycopg.connect(
            host=cfg.get("HOST") or None,
            port=cfg.get("PORT") or None,
            user=cfg.get("USER") or None,
            password=cfg.get("PASSWORD") or None,
            dbname="postgres",
            connect_timeout=3,
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at {cfg.get('HOST')}:{cfg.get('PORT')}: {exc}".strip()
    return None


def check_redis(url: str) -> str | None:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis is not reachable at {url}: {exc}"
    return None


def main() -> int:
    problems = [
        p
        for p in (
            check_postgres(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)),
            check_redis(os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)),
        )
        if p
    ]
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(HOW_TO_START, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
