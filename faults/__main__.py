"""The fault table: the service on a private PostgreSQL and Redis, under load, while its parts
fail, and what clients and patients saw.

    .venv/bin/python -m faults [--rounds 3] [--window 20] [--clients 4] [--keep]
    make faults

Starts a throwaway PostgreSQL cluster and Redis server on free ports (never the machine's),
migrates, seeds the demo clinic, and runs gunicorn, a Celery worker and beat against them. Load:
`--clients` threads creating patients over the API, each create with its own Idempotency-Key
and retried with that key until it succeeds (a client's honest retry), plus list reads; and a
stream of due notification emails that the worker sends (a file backend that records each
Message-ID). Faults, each `--rounds` times:

- redis_stop: Redis stopped for `--window` seconds, then started again;
- worker_kill: the worker SIGKILLed (the whole process group) mid-batch, started again;
- two_beats: a second beat running beside the first for `--window` seconds;
- postgres_restart: PostgreSQL restarted under load (fast shutdown);
- postgres_stop: PostgreSQL stopped for `--window` seconds (clients must get problem+json 503
  with Retry-After, and /healthz/ must name the database), then started again.

One row per fault: requests made in the fault's phase; 5xx during the fault window (from the
fault until the part is back, plus a short grace) and after it; 5xx during that were not
problem+json 503 with Retry-After; rows lost (a 201 whose patient is not in the database, or a
due notification never sent); effects duplicated (a patient created twice by one logical
request, an email sent under two Message-IDs); resends under the same Message-ID (the one repeat
a provider drops); recovery (seconds from the part being back to the first 2xx). Exits 1 when
any 5xx falls outside a window, a row is lost or an effect is duplicated.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from faults.stack import PG_BIN, Stack

PASSWORD = "demo-Sk1nPen!"  # the demo clinic's (treatments/management/commands/seed_demo.py)
GRACE_SECONDS = 5.0


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# --- Load ----------------------------------------------------------------------------------------


@dataclass
class Attempt:
    at: float  # sent
    done: float  # answered (or given up on)
    status: int  # 0: no answer (connection refused, timeout)
    problem_503: bool
    path: str


@dataclass
class Logical:
    """One patient a client means to create: attempts with one Idempotency-Key until a 2xx."""

    email: str
    key: str
    created_id: str | None = None
    refused: int | None = None  # a 4xx: the client's own mistake, not retried
    attempts: list[Attempt] = field(default_factory=list)


class Load:
    def __init__(self, stack: Stack, clients: int) -> None:
        self.stack = stack
        self.clients = clients
        self.logicals: list[Logical] = []
        self.reads: list[Attempt] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.token = self._login("demo_front_desk")

    def _login(self, username: str) -> str:
        response = httpx.post(
            self.stack.url + "/api/v1/auth/token/",
            json={"username": username, "password": PASSWORD},
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["token"])

    def start(self) -> None:
        self.stop.clear()
        self.threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(self.clients)
        ]
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        """Stop starting new creates; let every started one reach its 2xx (or give up)."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)

    def _run(self, n: int) -> None:
        client = httpx.Client(
            base_url=self.stack.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )
        count = 0
        while not self.stop.is_set():
            count += 1
            logical = Logical(
                email=f"load-{uuid.uuid4().hex[:12]}@example.com", key=str(uuid.uuid4())
            )
            with self.lock:
                self.logicals.append(logical)
            give_up = time.monotonic() + 120
            while logical.created_id is None and time.monotonic() < give_up:
                attempt = self._request(
                    client,
                    "post",
                    "/api/v1/patients/",
                    json={
                        "first_name": "Load",
                        "last_name": f"Client{n}",
                        "email": logical.email,
                        "date_of_birth": "1990-05-17",
                        "fitzpatrick_type": 2,
                    },
                    headers={"Idempotency-Key": logical.key},
                )
                logical.attempts.append(attempt[0])
                status = attempt[0].status
                if 200 <= status < 300:
                    logical.created_id = attempt[1]
                elif status == 0 or status >= 500:
                    time.sleep(0.3)  # the service is not answering: retry with the same key
                else:
                    logical.refused = status
                    break
            if count % 3 == 0:
                read, _ = self._request(client, "get", "/api/v1/patients/?page_size=20")
                with self.lock:
                    self.reads.append(read)
            time.sleep(0.05)
        client.close()

    @staticmethod
    def _request(
        client: httpx.Client, method: str, path: str, **kwargs
    ) -> tuple[Attempt, str | None]:
        at = time.monotonic()
        try:
            response = getattr(client, method)(path, **kwargs)
        except httpx.HTTPError:
            return Attempt(at, time.monotonic(), 0, False, path), None
        problem_503 = (
            response.status_code == 503
            and response.headers.get("content-type", "").startswith("application/problem+json")
            and "retry-after" in response.headers
        )
        created = None
        if response.status_code == 201:
            created = response.json().get("id")
        return Attempt(at, time.monotonic(), response.status_code, problem_503, path), created

    def attempts_between(self, start: float, end: float) -> list[Attempt]:
        with self.lock:
            every = [a for logical in self.logicals for a in logical.attempts] + self.reads
        # A request belongs to the window it was in flight during: answered after the start,
        # sent before the end.
        return [a for a in every if a.done >= start and a.at < end]


# --- Checks against the database (through the stack's own psql) --------------------------------


def sql(stack: Stack, query: str) -> list[list[str]]:
    result = subprocess.run(
        [
            str(PG_BIN / "psql"),
            "-X",
            "-A",
            "-t",
            "-F",
            "\t",
            "-h",
            "127.0.0.1",
            "-p",
            str(stack.pg_port),
            "-U",
            "postgres",
            "clinic",
            "-c",
            query,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.split("\t") for line in result.stdout.splitlines() if line]


def queue_notifications(stack: Stack, count: int) -> None:
    """Due `lot_recall` emails to the patient who opted in to email (made by `main`): rows as
    the outbox writes them."""
    sql(
        stack,
        f"""
        INSERT INTO scheduling_notification (id, clinic_id, patient_id, session_id, kind,
            subject_key, channel, status, scheduled_for, attempts, claimed_by, last_error,
            created_at, staff_id, claimed_at, sent_at)
        SELECT clinic_uuid7(), p.clinic_id, p.id, NULL, 'lot_recall',
               'faults:' || gen_random_uuid(), 'email', 'pending', now(), 0, '', '', now(),
               NULL, NULL, NULL
        FROM generate_series(1, {int(count)}) g
        CROSS JOIN LATERAL (SELECT id, clinic_id FROM patients_patient
                            WHERE email = 'notify-target@example.com') p
        """,
    )


def sent_message_ids(stack: Stack) -> Counter[str]:
    """Message-ID of every email the worker handed over, how many times each."""
    ids: Counter[str] = Counter()
    for path in stack.mail.glob("*.eml"):
        match = re.search(r"^Message-ID: <notification\.([0-9a-f-]+)@", path.read_text(), re.M)
        if match:
            ids[match.group(1)] += 1
    return ids


# --- Faults -----------------------------------------------------------------------------------


@dataclass
class Row:
    fault: str
    requests: int = 0
    during_5xx: int = 0
    after_5xx: int = 0
    not_problem_503: int = 0
    rows_lost: int = 0
    duplicated: int = 0
    resent_same_id: int = 0
    recovery: float | None = None
    notes: list[str] = field(default_factory=list)


def run_fault(stack: Stack, name: str, window: float, clients: int) -> Row:
    row = Row(name)
    load = Load(stack, clients)
    queue_notifications(stack, 300)
    before = sent_message_ids(stack)
    load.start()
    time.sleep(4)
    fault_start = time.monotonic()
    say(f"{name}: fault")
    if name == "redis_stop":
        stack.stop_redis()
        time.sleep(window)
        stack.start_redis()
    elif name == "worker_kill":
        time.sleep(0.5)  # mid-batch: the worker is sending the 300 queued emails
        stack.kill_worker()
        time.sleep(2)
        stack.start_worker()
    elif name == "two_beats":
        stack.start_beat("beat2")
        queue_notifications(stack, 300)
        time.sleep(window)
        stack.stop_beat("beat2")
    elif name == "postgres_restart":
        stack.restart_postgres()
    elif name == "postgres_stop":
        stack.stop_postgres()
        time.sleep(window / 2)
        try:
            health = httpx.get(stack.url + "/healthz/", timeout=5)
            if health.status_code != 503 or health.json().get("database") == "ok":
                row.notes.append(f"healthz during the outage: {health.status_code} {health.text}")
        except httpx.HTTPError as error:
            row.notes.append(f"healthz during the outage: no answer ({error})")
        time.sleep(window / 2)
        stack.start_postgres()
    back = time.monotonic()
    say(f"{name}: part back after {back - fault_start:.1f}s")
    time.sleep(10)
    load.finish()
    end = time.monotonic()

    window_end = back + GRACE_SECONDS
    during = load.attempts_between(fault_start, window_end)
    everything = load.attempts_between(0, end)
    row.requests = len(everything)
    row.during_5xx = sum(1 for a in during if a.status >= 500)
    row.not_problem_503 = sum(1 for a in during if a.status >= 500 and not a.problem_503)
    row.after_5xx = sum(
        1
        for a in everything
        if a.status >= 500 and not (a.done >= fault_start and a.at < window_end)
    )
    firsts = [a.at for a in everything if a.at >= back and 200 <= a.status < 300]
    row.recovery = (min(firsts) - back) if firsts else None

    # Every patient a client got a 201 for is there, once; none was created twice.
    emails = [logical.email for logical in load.logicals]
    stored = Counter(
        email
        for (email,) in sql(stack, "SELECT email FROM patients_patient WHERE email LIKE 'load-%'")
    )
    row.rows_lost += sum(
        1 for logical in load.logicals if logical.created_id and stored[logical.email] == 0
    )
    row.duplicated += sum(1 for email in emails if stored[email] > 1)
    refused = Counter(logical.refused for logical in load.logicals if logical.refused)
    if refused:
        row.notes.append(f"creates refused with 4xx: {dict(refused)}")
    unfinished = sum(1 for lg in load.logicals if lg.created_id is None and lg.refused is None)
    if unfinished:
        row.notes.append(f"{unfinished} creates never answered 2xx within 120 s")

    # Every due email goes out (wait for the worker to drain), under one Message-ID each.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        pending = int(
            sql(
                stack,
                "SELECT count(*) FROM scheduling_notification"
                " WHERE status IN ('pending', 'sending')",
            )[0][0]
        )
        if pending == 0:
            break
        time.sleep(1)
    row.rows_lost += pending
    if pending:
        row.notes.append(f"{pending} notifications still pending/sending after 90 s")
    sent = sent_message_ids(stack) - before
    row.resent_same_id = sum(count - 1 for count in sent.values() if count > 1)
    statuses = dict(sql(stack, "SELECT status, count(*) FROM scheduling_notification GROUP BY 1"))
    if statuses.get("failed"):
        row.notes.append(f"{statuses['failed']} notifications failed")
    # A Message-ID is the notification's id: two different ids for one row cannot happen, so a
    # duplicated effect would be a second row for one subject (the unique constraint's job).
    dupes = sql(
        stack,
        "SELECT count(*) FROM (SELECT kind, subject_key, channel FROM"
        " scheduling_notification GROUP BY 1, 2, 3 HAVING count(*) > 1) d",
    )
    row.duplicated += int(dupes[0][0])
    return row


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'fault':<18}{'requests':>9}{'5xx during':>11}{'not 503':>9}{'5xx after':>10}"
        f"{'rows lost':>10}{'duplicated':>11}{'resent*':>8}{'recovery s':>11}"
    )
    print()
    print(header)
    print("-" * len(header))
    for row in rows:
        recovery = "-" if row.recovery is None else f"{row.recovery:.2f}"
        print(
            f"{row.fault:<18}{row.requests:>9}{row.during_5xx:>11}{row.not_problem_503:>9}"
            f"{row.after_5xx:>10}{row.rows_lost:>10}{row.duplicated:>11}{row.resent_same_id:>8}"
            f"{recovery:>11}"
        )
        for note in row.notes:
            print(f"    note: {note}")
    print(
        "\n5xx during: from the fault until the part is back + 5 s (503 problem+json expected; "
        "'not 503' counts the others).\n* resent: emails handed over a second time under the "
        "same Message-ID (the one in flight at a kill), which the receiving side drops."
    )


FAULTS = ["redis_stop", "worker_kill", "two_beats", "postgres_restart", "postgres_stop"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="times each fault is run")
    parser.add_argument("--window", type=float, default=20.0, help="seconds a part stays down")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--only", choices=FAULTS, action="append", help="run only these faults")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory (logs)")
    args = parser.parse_args()

    def _terminate(signum: int, frame: object) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, _terminate)
    workdir = Path(tempfile.mkdtemp(prefix="skinpen-faults-"))
    stack = Stack(workdir)
    rows: list[Row] = []
    try:
        say(f"private stack in {workdir}: PostgreSQL :{stack.pg_port}, Redis :{stack.redis_port}")
        stack.prepare()
        stack.start_web()
        stack.start_worker()
        stack.start_beat()
        say(f"service up at {stack.url}")
        target = httpx.post(
            stack.url + "/api/v1/patients/",
            headers={"Authorization": f"Bearer {Load(stack, 0).token}"},
            json={
                "first_name": "Notify",
                "last_name": "Target",
                "date_of_birth": "1988-03-04",
                "email": "notify-target@example.com",
                "fitzpatrick_type": 3,
                "email_opt_in": True,
            },
            timeout=10,
        )
        target.raise_for_status()
        for _round in range(args.rounds):
            for name in args.only or FAULTS:
                rows.append(run_fault(stack, name, args.window, args.clients))
                say(f"{name}: done")
    finally:
        stack.shutdown()
        if args.keep:
            say(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(rows)
    bad = [r for r in rows if r.after_5xx or r.rows_lost or r.duplicated or r.not_problem_503]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
