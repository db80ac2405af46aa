"""queue(): one row per channel, opt-outs skipped, once per (kind, subject, channel, patient),
published to the real broker after commit, and harmless when the broker is down."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from scheduling.notifications import outbox, scans
from scheduling.notifications.models import Notification
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.notifications.helpers import delivered, rows

CLOSED_BROKER = "redis://127.0.0.1:1/0"


@pytest.mark.django_db
def test_one_row_per_channel_published_after_commit(
    recipient, private_broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        created = outbox.queue(kind="lot_recall", patient=recipient, subject_key="lot:1")
        assert private_broker.queued() == []  # nothing leaves before the commit
    now = created[0].scheduled_for
    assert len(callbacks) == 1
    assert rows() == [
        ("lot_recall", "email", "pending", now),
        ("lot_recall", "sms", "pending", now),
    ]
    assert [(n.channel, n.patient_id, n.clinic_id, n.session_id) for n in created] == [
        ("email", recipient.id, recipient.clinic_id, None),
        ("sms", recipient.id, recipient.clinic_id, None),
    ]
    assert private_broker.queued() == [
        ("scheduling.send_notification", {"notification_id": str(n.id)}) for n in created
    ]


@pytest.mark.django_db
def test_channels_not_opted_into_are_skipped(
    make_recipient, private_broker, django_capture_on_commit_callbacks
):
    patient = make_recipient(sms_opt_in=False)
    with django_capture_on_commit_callbacks(execute=True):
        outbox.queue(kind="lot_recall", patient=patient, subject_key="lot:1")
    assert list(
        Notification.objects.order_by("channel").values_list("channel", "status", "last_error")
    ) == [("email", "pending", ""), ("sms", "skipped", "not opted in to sms")]
    assert [kwargs for _name, kwargs in private_broker.queued()] == [
        {"notification_id": str(Notification.objects.get(channel="email").id)}
    ]


@pytest.mark.django_db
def test_patient_opted_out_of_everything_gets_two_skipped_rows(make_recipient):
    patient = make_recipient(sms_opt_in=False, email_opt_in=False, email="", phone="")
    outbox.queue(kind="lot_recall", patient=patient, subject_key="lot:1")
    assert list(Notification.objects.order_by("channel").values_list("status", "last_error")) == [
        ("skipped", "not opted in to email"),
        ("skipped", "not opted in to sms"),
    ]


@pytest.mark.django_db
def test_the_same_message_is_queued_once(recipient, make_recipient):
    first = outbox.queue(kind="lot_recall", patient=recipient, subject_key="lot:7")
    again = outbox.queue(kind="lot_recall", patient=recipient, subject_key="lot:7")
    assert (len(first), again) == (2, [])
    # The same lot concerns another patient: that patient gets their own message.
    other = outbox.queue(kind="lot_recall", patient=make_recipient(), subject_key="lot:7")
    assert len(other) == 2
    # Another kind about the same subject is another message.
    assert len(outbox.queue(kind="aftercare_checkin", patient=recipient, subject_key="lot:7"))
    assert Notification.objects.count() == 6


@pytest.mark.django_db
def test_a_row_not_yet_due_is_not_published(
    recipient, private_broker, django_capture_on_commit_callbacks
):
    later = timezone.now() + timedelta(hours=3)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        outbox.queue(kind="lot_recall", patient=recipient, subject_key="lot:1", scheduled_for=later)
    assert (len(callbacks), private_broker.queued()) == (0, [])
    assert rows() == [
        ("lot_recall", "email", "pending", later),
        ("lot_recall", "sms", "pending", later),
    ]


@pytest.mark.django_db
def test_broker_down_queueing_still_commits_and_the_scan_sends(
    recipient, private_broker, django_capture_on_commit_callbacks, caplog
):
    with (
        override_settings(CELERY_BROKER_URL=CLOSED_BROKER),
        django_capture_on_commit_callbacks(execute=True),
    ):
        created = outbox.queue(kind="lot_recall", patient=recipient, subject_key="lot:1")
    assert "could not publish 2 of 2 notification task(s)" in caplog.text
    assert [n.status for n in Notification.objects.order_by("channel")] == ["pending", "pending"]
    assert private_broker.queued() == []

    result = scans.scan()  # Redis is back: the beat's scan finds the rows

    assert result["send_sent"] == 2
    assert delivered() == [("email", recipient.email), ("sms", recipient.phone)]
    assert {n.id for n in Notification.objects.filter(status="sent")} == {n.id for n in created}


@pytest.mark.django_db(transaction=True)
def test_concurrent_queueing_of_one_message_makes_one_row_per_channel(recipient):
    barrier = threading.Barrier(4)
    made: list[int] = []

    def queue_it():
        try:
            barrier.wait()
            with transaction.atomic():
                made.append(
                    len(outbox.queue(kind="lot_recall", patient=recipient, subject_key="lot:9"))
                )
        finally:
            connection.close()

    threads = [threading.Thread(target=queue_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(made) == [0, 0, 0, 2]
    assert Notification.objects.count() == 2
