"""Sending: claimed before it is sent, once per row whatever runs twice or races, retried with
backoff, `failed` after the last attempt, reclaimed when its worker died mid-send."""

import os
import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import time_machine
from django.core import mail
from django.db import OperationalError, connection
from django.test import override_settings

from scheduling import channels, tasks
from scheduling.channels import SMSBackend
from scheduling.models import SessionStatus
from scheduling.notifications import outbox, scans, sender
from scheduling.notifications.models import Notification
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.factories.notifications import NotificationFactory
from tests.notifications.helpers import delivered, ny

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class ProviderDown(SMSBackend):
    """A provider that refuses every message (a test double for an external service)."""

    def send(self, *, to, body, reference):
        raise ConnectionError("provider unreachable")


class InvalidNumber(SMSBackend):
    def send(self, *, to, body, reference):
        raise channels.PermanentSendError("invalid number")


class QuotesTheNumber(SMSBackend):
    """A provider whose refusal quotes the number, as real ones do."""

    def send(self, *, to, body, reference):
        raise channels.PermanentSendError(f"{to} is not a mobile number")


class WorkerKilled(BaseException):
    """What a SIGKILL looks like from inside the worker: nothing after it runs."""


class DiesBeforeHandover(SMSBackend):
    def send(self, *, to, body, reference):
        raise WorkerKilled


class DiesAfterHandover(SMSBackend):
    """The provider accepted the message; the worker died before it could record that."""

    def send(self, *, to, body, reference):
        channels.outbox.append(channels.SentSMS(to=to, body=body, reference=reference))
        raise WorkerKilled


class DatabaseDropsAfterHandover(SMSBackend):
    """The provider accepts the message; then the worker's database connection is cut (an
    outage, a PostgreSQL restart), really: another session terminates it."""

    def send(self, *, to, body, reference):
        channels.outbox.append(channels.SentSMS(to=to, body=body, reference=reference))
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (pid,) = cursor.fetchone()
        settings = connection.settings_dict
        with psycopg.connect(
            dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"],
            port=settings["PORT"] or 5432, autocommit=True,
        ) as other:  # fmt: skip
            other.execute("SELECT pg_terminate_backend(%s)", [pid])


def sms_only(make_recipient):
    return make_recipient(email_opt_in=False)


def here(name):
    return f"{__name__}.{name}"


@pytest.mark.django_db
def test_send_task_run_twice_sends_once(recipient):
    row = NotificationFactory(patient=recipient)
    first = tasks.send_notification.apply(kwargs={"notification_id": str(row.id)}).get()
    row.refresh_from_db()
    sent_at = row.sent_at
    second = tasks.send_notification.apply(kwargs={"notification_id": str(row.id)}).get()
    row.refresh_from_db()
    assert (first, second) == ("sent", "not_claimed")
    assert (row.status, row.sent_at, row.attempts, len(mail.outbox)) == ("sent", sent_at, 1, 1)


@pytest.mark.django_db
def test_batch_and_scan_tasks_run_twice_send_once(recipient):
    rows = [NotificationFactory(patient=recipient, channel=c) for c in ("email", "sms")]
    assert tasks.send_due_notifications.apply().get() == 2
    sent_at = {n.id: n.sent_at for n in Notification.objects.all()}
    assert tasks.send_due_notifications.apply().get() == 0
    tasks.scan_notifications.apply().get()
    tasks.scan_notifications.apply().get()
    assert delivered() == [("email", recipient.email), ("sms", recipient.phone)]
    assert {n.id: n.sent_at for n in Notification.objects.all()} == sent_at
    assert all(n.attempts == 1 for n in Notification.objects.filter(pk__in=[r.id for r in rows]))


@pytest.mark.django_db
def test_task_for_a_row_that_is_gone_logs_and_returns(caplog):
    missing = "0b0c8a39-3f5e-4a8e-9d8a-2a4a2f1c0c11"
    assert tasks.send_notification.apply(kwargs={"notification_id": missing}).get() == "missing"
    assert f"notification {missing} is gone" in caplog.text
    assert tasks.send_notification.apply(kwargs={"notification_id": "nope"}).get() == "missing"


@pytest.mark.django_db
def test_sending_is_audited_without_clinical_detail(recipient):
    from clinic.models import AuditEvent

    row = NotificationFactory(patient=recipient)
    sender.send(row.id)
    event = AuditEvent.objects.get(action="notification.send")
    assert (event.object_id, event.patient_id, event.actor_label, event.detail, event.outcome) == (
        str(row.id),
        recipient.id,
        "scheduling.send_notification",
        {"kind": "lot_recall", "channel": "email"},
        "success",
    )


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_for_each_row_send_it_once(recipient):
    rows = [
        NotificationFactory(patient=recipient, channel=("email", "sms")[i % 2]) for i in range(20)
    ]
    outcomes: list[str] = []

    def worker(row_id, barrier):
        try:
            barrier.wait()
            outcomes.append(sender.send(row_id))
        finally:
            connection.close()

    for row in rows:
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=worker, args=(row.id, barrier)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert sorted(outcomes) == ["not_claimed"] * 20 + ["sent"] * 20
    assert (len(mail.outbox), len(channels.outbox)) == (10, 10)
    assert sorted(
        {m.reference for m in channels.outbox}
        | {m.extra_headers["Message-ID"] for m in mail.outbox}
    ) == sorted(
        [str(r.id) for r in rows if r.channel == "sms"]
        + [f"<notification.{r.id}@localhost>" for r in rows if r.channel == "email"]
    )
    assert set(Notification.objects.values_list("status", "attempts")) == {("sent", 1)}


@pytest.mark.django_db
@override_settings(
    SMS_BACKEND=here("ProviderDown"),
    NOTIFICATION_MAX_ATTEMPTS=5,
    NOTIFICATION_RETRY_BASE_SECONDS=60,
    NOTIFICATION_RETRY_MAX_SECONDS=3600,
)
def test_failures_retry_with_backoff_then_fail(make_recipient):
    patient = sms_only(make_recipient)
    with time_machine.travel(T0, tick=False) as clock:
        outbox.queue(kind="lot_recall", patient=patient, subject_key="lot:1")
        row = Notification.objects.get(channel="sms")
        history = []
        for attempt in range(1, 6):
            assert sender.send_due() == {"retry" if attempt < 5 else "failed": 1}
            row.refresh_from_db()
            history.append((row.status, row.attempts, row.scheduled_for - T0, row.last_error))
            # Not due again before its backoff has passed.
            assert sender.send_due() == {}
            clock.move_to(row.scheduled_for)
    assert history == [
        ("pending", 1, timedelta(seconds=60), "ConnectionError: provider unreachable"),
        ("pending", 2, timedelta(seconds=60 + 120), "ConnectionError: provider unreachable"),
        ("pending", 3, timedelta(seconds=60 + 120 + 240), "ConnectionError: provider unreachable"),
        (
            "pending",
            4,
            timedelta(seconds=60 + 120 + 240 + 480),
            "ConnectionError: provider unreachable",
        ),
        (
            "failed",
            5,
            timedelta(seconds=60 + 120 + 240 + 480),
            "ConnectionError: provider unreachable",
        ),
    ]
    assert (row.sent_at, channels.outbox) == (None, [])


@pytest.mark.django_db
@override_settings(SMS_BACKEND=here("InvalidNumber"))
def test_a_permanent_refusal_fails_at_once(make_recipient):
    patient = sms_only(make_recipient)
    outbox.queue(kind="lot_recall", patient=patient, subject_key="lot:1")
    row = Notification.objects.get(channel="sms")
    assert sender.send(row.id) == "failed"
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == (
        "failed",
        1,
        "PermanentSendError: invalid number",
    )


@pytest.mark.django_db
@override_settings(SMS_BACKEND=here("QuotesTheNumber"))
def test_the_stored_error_holds_no_patient_data(make_recipient):
    """last_error is read by staff and kept: the provider's text is redacted like a log line."""
    patient = sms_only(make_recipient)
    outbox.queue(kind="lot_recall", patient=patient, subject_key="lot:1")
    row = Notification.objects.get(channel="sms")
    assert sender.send(row.id) == "failed"
    row.refresh_from_db()
    assert patient.phone.startswith("+")
    assert row.last_error == "PermanentSendError: [phone] is not a mobile number"


@pytest.mark.django_db
@override_settings(NOTIFICATION_CLAIM_TIMEOUT_SECONDS=300)
def test_a_row_whose_worker_died_before_the_handover_is_reclaimed_and_sent_once(make_recipient):
    patient = sms_only(make_recipient)
    row = NotificationFactory(patient=patient, channel="sms", scheduled_for=T0)
    with time_machine.travel(T0, tick=False) as clock:
        with override_settings(SMS_BACKEND=here("DiesBeforeHandover")), pytest.raises(WorkerKilled):
            sender.send(row.id)
        row.refresh_from_db()
        assert (row.status, row.claimed_at, row.attempts) == ("sending", T0, 1)

        clock.move_to(T0 + timedelta(seconds=299))
        assert scans.scan()["reclaimed"] == 0
        row.refresh_from_db()
        assert (row.status, channels.outbox) == ("sending", [])

        clock.move_to(T0 + timedelta(seconds=301))
        result = scans.scan()
    row.refresh_from_db()
    assert (result["reclaimed"], result["send_sent"]) == (1, 1)
    assert (row.status, row.attempts, row.sent_at) == ("sent", 2, T0 + timedelta(seconds=301))
    assert [m.reference for m in channels.outbox] == [str(row.id)]


@pytest.mark.django_db
def test_the_documented_window_a_worker_dying_after_the_handover_repeats_that_message(
    make_recipient,
):
    """The one duplicate the outbox cannot exclude (scheduling.notifications docstring)."""
    patient = sms_only(make_recipient)
    row = NotificationFactory(patient=patient, channel="sms", scheduled_for=T0)
    with time_machine.travel(T0, tick=False) as clock:
        with override_settings(SMS_BACKEND=here("DiesAfterHandover")), pytest.raises(WorkerKilled):
            sender.send(row.id)
        clock.move_to(T0 + timedelta(seconds=301))
        scans.scan()
        scans.scan()
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("sent", 2)
    assert [m.reference for m in channels.outbox] == [str(row.id), str(row.id)]


@pytest.mark.django_db
@override_settings(NOTIFICATION_MAX_ATTEMPTS=1)
def test_a_stuck_row_out_of_attempts_ends_failed(make_recipient):
    patient = sms_only(make_recipient)
    row = NotificationFactory(patient=patient, channel="sms", scheduled_for=T0)
    with time_machine.travel(T0, tick=False) as clock:
        with override_settings(SMS_BACKEND=here("DiesBeforeHandover")), pytest.raises(WorkerKilled):
            sender.send(row.id)
        clock.move_to(T0 + timedelta(seconds=301))
        assert scans.scan()["reclaimed"] == 1
    row.refresh_from_db()
    assert (row.status, row.last_error) == ("failed", "sender lost mid-send, out of attempts")


@pytest.mark.django_db
def test_a_reminder_for_a_session_cancelled_since_is_skipped(make_booked_session):
    with time_machine.travel(ny(2026, 3, 2, 10, 30), tick=False):
        session = make_booked_session(ny(2026, 3, 3, 10))
        assert scans.queue_session_reminders(ny(2026, 3, 2, 10, 30)) == 2
        # The session is cancelled before a worker gets to the rows.
        session.status = SessionStatus.CANCELLED
        session.save()
        assert sender.send_due() == {"skipped": 2}
    assert (
        list(Notification.objects.values_list("status", "last_error"))
        == [("skipped", "session no longer booked")] * 2
    )
    assert delivered() == []


@pytest.mark.django_db
def test_a_patient_who_opted_out_since_is_skipped(recipient):
    row = NotificationFactory(patient=recipient, channel="sms")
    recipient.sms_opt_in = False
    recipient.save()
    assert sender.send(row.id) == "skipped"
    row.refresh_from_db()
    assert (row.status, row.last_error, channels.outbox) == ("skipped", "not opted in to sms", [])


@pytest.mark.django_db
def test_message_texts_carry_clinic_and_local_time_and_no_clinical_detail(
    make_booked_session, recipient
):
    session = make_booked_session(ny(2026, 3, 9, 9))
    with time_machine.travel(ny(2026, 3, 8, 12), tick=False):
        scans.scan()
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert (email.subject, email.body, email.to, email.from_email) == (
        "Reminder: your appointment at Bloom Skin Studio on Monday 9 March 2026 at 09:00 EDT",
        "Hello Ada,\n\n"
        "This is a reminder of your appointment at Bloom Skin Studio on Monday 9 March 2026 at "
        "09:00 EDT.\n\n"
        "If you need to change it, please contact the clinic.\n\n"
        "Bloom Skin Studio\n",
        [recipient.email],
        "no-reply@localhost",
    )
    assert [(m.to, m.body) for m in channels.outbox] == [
        (
            recipient.phone,
            "Bloom Skin Studio: reminder of your appointment on Monday 9 March 2026 at 09:00 EDT. "
            "Reply C to confirm, R to reschedule, STOP to opt out.",
        )
    ]
    assert session.series.indication not in email.body


@pytest.mark.django_db
def test_recall_text_says_only_to_contact_the_clinic(recipient):
    with time_machine.travel(ny(2026, 3, 8, 12), tick=False):
        outbox.queue(kind="lot_recall", patient=recipient, subject_key="lot:1")
        sender.send_due()
    assert [(m.subject, m.body) for m in mail.outbox] == [
        (
            "Please contact Bloom Skin Studio",
            "Hello Ada,\n\n"
            "Bloom Skin Studio would like to speak with you about a recent visit (Sunday 8 March "
            "2026).\n\nPlease contact the clinic.\n\nBloom Skin Studio\n",
        )
    ]
    assert [m.body for m in channels.outbox] == [
        "Bloom Skin Studio: we would like to speak with you about a recent visit. "
        "Please contact the clinic."
    ]


@pytest.mark.django_db
def test_a_row_whose_worker_process_is_known_dead_is_reclaimed_without_the_timeout(make_recipient):
    """A worker process keeps a heartbeat (clinic/liveness.py) and stamps its claims: once the
    heartbeat has lapsed, the scan puts the row back after WORKER_DEAD_AFTER_SECONDS, not 300."""
    from clinic import liveness

    patient = sms_only(make_recipient)
    row = NotificationFactory(patient=patient, channel="sms", scheduled_for=T0)
    beating = liveness.start_heartbeat()
    me = liveness.identity()
    assert me.endswith(f":{os.getpid()}")
    try:
        with time_machine.travel(T0, tick=False) as clock:
            with (
                override_settings(SMS_BACKEND=here("DiesBeforeHandover")),
                pytest.raises(WorkerKilled),
            ):
                sender.send(row.id)
            row.refresh_from_db()
            assert (row.status, row.claimed_by) == ("sending", me)

            clock.move_to(T0 + timedelta(seconds=21))
            assert scans.scan()["reclaimed"] == 0  # its process still beats: still sending
    finally:
        liveness.stop_heartbeat(beating)
    assert liveness.identity() == ""
    with time_machine.travel(T0 + timedelta(seconds=19), tick=False) as clock:
        assert scans.scan()["reclaimed"] == 0  # dead, but claimed too recently to be sure
        clock.move_to(T0 + timedelta(seconds=21))
        result = scans.scan()
    row.refresh_from_db()
    assert (result["reclaimed"], result["send_sent"]) == (1, 1)
    assert (row.status, row.attempts, row.claimed_by) == ("sent", 2, "")
    # The provider sees the same reference both times and can drop a repeat.
    assert [m.reference for m in channels.outbox] == [str(row.id)]


@pytest.mark.django_db
def test_when_redis_does_not_answer_no_worker_is_taken_for_dead(settings):
    from clinic import liveness

    assert liveness.dead(["some-host:1"]) == {"some-host:1"}
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    assert liveness.dead(["some-host:1"]) == set()


@pytest.mark.django_db(transaction=True)
def test_a_message_that_left_is_recorded_sent_through_a_dropped_connection(make_recipient):
    """Not left `sending` for a reclaim to send again: the write is retried on a new connection."""
    patient = sms_only(make_recipient)
    row = NotificationFactory(patient=patient, channel="sms")
    with override_settings(SMS_BACKEND=here("DatabaseDropsAfterHandover")):
        assert sender.send(row.id) == "sent"
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("sent", 1)
    assert [m.reference for m in channels.outbox] == [str(row.id)]

    # Without the retry, the same cut leaves the row `sending` (what the fault table found).
    other = NotificationFactory(patient=patient, channel="sms")
    with (
        override_settings(
            SMS_BACKEND=here("DatabaseDropsAfterHandover"), NOTIFICATION_RECORD_RETRY_SECONDS=0
        ),
        pytest.raises(OperationalError),
    ):
        sender.send(other.id)
    connection.close()  # the cut one; the next query connects afresh
    other.refresh_from_db()
    assert other.status == "sending"
