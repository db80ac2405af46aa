"""The private stack the fault runner breaks: PostgreSQL, Redis, gunicorn, worker, beat."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Stack:
    """PostgreSQL, Redis, gunicorn, worker and beat, all of their own, in one temp directory."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.pg_port, self.redis_port, self.web_port = free_port(), free_port(), free_port()
        self.pg_data = workdir / "pg"
        self.mail = workdir / "mail"
        self.mail.mkdir()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.as_postgres = os.geteuid() == 0  # initdb refuses to run as root
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "clinic.settings",
            "DJANGO_DEBUG": "false",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{self.pg_port}/clinic",
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "EMAIL_BACKEND": "faults.mail.RecordingEmailBackend",
            "FAULTS_MAIL_DIR": str(self.mail),
            "NOTIFICATION_SCAN_SECONDS": "3",
            "WORKER_HEARTBEAT_SECONDS": "1",
            "WORKER_DEAD_AFTER_SECONDS": "5",
            "NOTIFICATION_RETRY_BASE_SECONDS": "2",
            "NOTIFICATION_MAX_ATTEMPTS": "50",
            "AUDIT_SIGNING_KEY": "",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("TESTING", None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def _pg(self, *args: str) -> list[str]:
        command = [str(PG_BIN / args[0]), *args[1:]]
        return ["runuser", "-u", "postgres", "--", *command] if self.as_postgres else command

    def start_postgres(self) -> None:
        if not self.pg_data.exists():
            self.pg_data.mkdir()
            if self.as_postgres:
                shutil.chown(self.dir, "postgres")
                shutil.chown(self.pg_data, "postgres")
            subprocess.run(
                self._pg(
                    "initdb",
                    "-D",
                    str(self.pg_data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ),
                check=True,
                capture_output=True,
            )
        options = (
            f"-p {self.pg_port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c max_connections=200"
        )
        subprocess.run(
            self._pg(
                "pg_ctl",
                "-D",
                str(self.pg_data),
                "-o",
                options,
                "-l",
                str(self.dir / "pg.log"),
                "-w",
                "start",
            ),
            check=True,
            capture_output=True,
        )

    def stop_postgres(self) -> None:
        subprocess.run(
            self._pg("pg_ctl", "-D", str(self.pg_data), "-m", "fast", "-w", "stop"),
            check=True,
            capture_output=True,
        )

    def restart_postgres(self) -> None:
        # Not `pg_ctl restart`: the restarted server would keep our pipe as its stdout.
        self.stop_postgres()
        self.start_postgres()

    def start_redis(self) -> None:
        self._spawn(
            "redis",
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
        )
        for _ in range(100):
            if (
                subprocess.run(
                    ["redis-cli", "-p", str(self.redis_port), "ping"],
                    capture_output=True,
                    check=False,
                ).stdout.strip()
                == b"PONG"
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("redis did not start")

    def stop_redis(self) -> None:
        self._stop("redis")

    def _spawn(self, name: str, command: list[str]) -> None:
        log = (self.dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    def prepare(self) -> None:
        self.start_postgres()
        self.start_redis()
        subprocess.run(
            [sys.executable, "scripts/ensure_database.py"],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )
        self.manage("migrate", "--noinput", "-v0")
        self.manage("seed_demo")

    def start_web(self) -> None:
        self._spawn(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "clinic.wsgi",
                "--bind",
                f"127.0.0.1:{self.web_port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--timeout",
                "60",
            ],
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not come up (see web.log)")

    def start_worker(self) -> None:
        self._spawn(
            "worker",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "clinic",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                "--hostname",
                f"faults-{uuid.uuid4().hex[:6]}@%h",
            ],
        )

    def kill_worker(self) -> None:
        self._stop("worker", signal.SIGKILL)

    def start_beat(self, name: str = "beat") -> None:
        self._spawn(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "clinic",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(self.dir / f"{name}-schedule"),
            ],
        )

    def stop_beat(self, name: str = "beat") -> None:
        self._stop(name)

    def shutdown(self) -> None:
        for name in list(self.processes):
            self._stop(name)
        if self.pg_data.exists():
            subprocess.run(
                self._pg("pg_ctl", "-D", str(self.pg_data), "-m", "immediate", "stop"),
                capture_output=True,
                check=False,
            )
