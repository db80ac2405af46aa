"""Create the application database named in DATABASE_URL if it does not exist yet."""

import os
import sys

import environ
import psycopg
from psycopg import sql

url = os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/clinic")
cfg = environ.Env.db_url_config(url)
with psycopg.connect(
    host=cfg.get("HOST") or None,
    port=cfg.get("PORT") or None,
    user=cfg.get("USER") or None,
    password=cfg.get("PASSWORD") or None,
    dbname="postgres",
    autocommit=True,
) as conn:
    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone()
    if not exists:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(cfg["NAME"])))
        print(f"created database {cfg['NAME']}", file=sys.stderr)
