"""With a real broker and real worker processes: a worker killed with SIGKILL mid-batch of
1,000 loses none and repeats none outside the documented window; with the broker down, booking
still answers 201 and the reminder goes out once the scan runs."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from scheduling.notifications import outbox, scans
from scheduling.notifications.models import Notification
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.factories import PatientFactory, ScreeningFactory, SeriesFactory
from tests.notifications.helpers import delivered

CLOSED_BROKER = "redis://127.0.0.1:1/0"
BACKENDS = "tests.notifications.line_backends"
CELERY_WORKER = [sys.executable, "-m", "celery", "-A", "clinic", "worker", "--loglevel", "INFO"]
CELERY_WORKER += ["--concurrency", "2", "--without-gossip", "--without-mingle"]
CELERY_WORKER += ["--without-heartbeat"]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a real subprocess's progress (time-machine cannot move another process)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def start_worker(name: str, broker, work_dir: Path, **extra_env: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "clinic.settings_test",
        "DATABASE_URL": database_url(),
        "REDIS_URL": broker.url,
        "CELERY_TEST_KEY_PREFIX": broker.prefix,
        "EMAIL_BACKEND": f"{BACKENDS}.LineEmailBackend",
        "SMS_BACKEND": f"{BACKENDS}.LineSMSBackend",
        "NOTIFY_TEST_LOG": str(work_dir / "delivered.log"),
        "NOTIFY_TEST_DELAY": "0.01",
        **extra_env,
    }
    with (work_dir / f"{name}.log").open("wb") as out:
        return subprocess.Popen(  # noqa: S603 (a fixed command line)
            [*CELERY_WORKER, "--hostname", f"{name}@%h"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGKILL reaches the pool too
        )


def kill(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)


def deliveries(work_dir: Path) -> Counter[str]:
    """Messages delivered per notification id."""
    log = work_dir / "delivered.log"
    counts: Counter[str] = Counter()
    for line in log.read_text().splitlines() if log.exists() else []:
        channel, reference = line.split(" ", 1)
        if channel == "email":  # <notification.<id>@localhost>
            reference = reference.removeprefix("<notification.").split("@", 1)[0]
        counts[reference] += 1
    return counts


def statuses() -> dict[str, set[str]]:
    by_status: dict[str, set[str]] = {}
    for pk, status in Notification.objects.values_list("id", "status"):
        by_status.setdefault(status, set()).add(str(pk))
    return by_status


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_of_1000_loses_none_and_repeats_none(
    clinic, work_dir, private_broker
):
    with transaction.atomic():  # one commit, not one per patient
        patients = PatientFactory.create_batch(500, clinic=clinic)  # email and SMS: 1,000 rows
        for patient in patients:
            outbox.queue(kind="lot_recall", patient=patient, subject_key="lot:kill-test")
    assert (Notification.objects.count(), private_broker.waiting()) == (1000, 1000)

    first = start_worker("first", private_broker, work_dir)
    try:
        wait_until(
            lambda: Notification.objects.filter(status="sent").count() >= 300, 90, "300 sent"
        )
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        kill(first)
    at_kill = statuses()
    delivered_at_kill = deliveries(work_dir)
    in_flight = at_kill.get("sending", set())

    # A new worker takes what is left in the queue; messages the dead one had taken (unacked,
    # not redelivered before the visibility timeout) are found by the beat's scan. The new
    # worker's claim timeout is short so that its scan reclaims the dead worker's rows now.
    second = start_worker(
        "second", private_broker, work_dir, NOTIFICATION_CLAIM_TIMEOUT_SECONDS="2"
    )
    try:
        wait_until(lambda: private_broker.waiting() == 0, 90, "the queue to drain")
        time.sleep(2.5)  # past the claim timeout of the rows the dead worker held
        assert outbox.publish_tasks([("scheduling.scan_notifications", {})]) == 1
        wait_until(
            lambda: Notification.objects.filter(status="sent").count() == 1000, 90, "all sent"
        )
    finally:
        kill(second)

    counts = deliveries(work_dir)
    repeated = {ref for ref, n in counts.items() if n > 1}
    report = {
        "sent_at_kill": len(at_kill.get("sent", ())),
        "sending_at_kill": len(in_flight),
        "pending_at_kill": len(at_kill.get("pending", ())),
        "delivered_at_kill": sum(delivered_at_kill.values()),
        "delivered_total": sum(counts.values()),
        "repeated": len(repeated),
    }
    print("kill test:", report)
    assert set(statuses()) == {"sent"}
    assert set(counts) == {str(pk) for pk in Notification.objects.values_list("id", flat=True)}
    # No row whose `sent` had committed went out again; a repeat is only ever a row that was
    # mid-send when the worker died (the documented window), and then only once more.
    assert not repeated & at_kill.get("sent", set())
    assert repeated <= in_flight
    assert all(n <= 2 for n in counts.values())
    assert 0 < report["sent_at_kill"] < 1000


@pytest.mark.django_db
def test_booking_with_the_broker_down_answers_201_and_the_scan_sends_the_reminder(
    api, clinic, front_desk, provider, django_capture_on_commit_callbacks
):
    patient = PatientFactory(clinic=clinic, first_name="Ada")
    ScreeningFactory(patient=patient, screened_by=front_desk, screened_on=timezone.localdate())
    series = SeriesFactory(patient=patient, created_by=front_desk)
    starts_at = (timezone.now() + timedelta(hours=3)).replace(second=0, microsecond=0)
    with (
        override_settings(CELERY_BROKER_URL=CLOSED_BROKER),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = api(front_desk).post(
            "/api/v1/sessions/",
            {"series": str(series.id), "provider": str(provider.id), "starts_at": starts_at},
        )
        assert response.status_code == 201, response.content
        # The beat's scan while Redis is still down: rows are made, and sent from the database.
        scans.scan()
    assert list(
        Notification.objects.order_by("channel").values_list("kind", "channel", "status")
    ) == [("session_reminder", "email", "sent"), ("session_reminder", "sms", "sent")]
    assert delivered() == [("email", patient.email), ("sms", patient.phone)]
    scans.scan()
    assert len(delivered()) == 2
