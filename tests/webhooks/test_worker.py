"""With a real broker and a real worker process: a booking's delivery reaches the receiver
through the task published after commit, and the same task published twice sends once."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from scheduling import services as scheduling_services
from scheduling.webhooks import outbox
from scheduling.webhooks.models import WebhookDelivery
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.factories import PatientFactory, ScreeningFactory, SeriesFactory
from tests.factories.webhooks import WebhookEndpointFactory
from tests.notifications.test_worker import kill, start_worker, wait_until
from tests.webhooks.conftest import received


@pytest.mark.django_db(transaction=True)
def test_the_worker_delivers_after_commit_and_a_doubled_task_sends_once(
    clinic,
    front_desk,
    provider,
    private_broker,
    work_dir,
    receiver,
):
    hook = WebhookEndpointFactory(clinic=clinic, url=receiver.url_for("/hook"))
    patient = PatientFactory(clinic=clinic)
    ScreeningFactory(patient=patient, screened_by=front_desk, screened_on=clinic.today())
    series = SeriesFactory(patient=patient, created_by=front_desk)
    with transaction.atomic():
        session = scheduling_services.book_session(
            actor=front_desk,
            series=series,
            provider=provider,
            starts_at=timezone.now() + timedelta(days=3),
        )
        # Not before commit: the task is published by the commit.
        assert private_broker.waiting() == 0
    assert private_broker.waiting() == 1

    worker = start_worker("webhooks", private_broker, work_dir)
    try:
        wait_until(lambda: len(receiver.log) == 1, 60, "the delivery")
        wait_until(
            lambda: WebhookDelivery.objects.filter(status="delivered").exists(), 30, "delivered"
        )
        delivery = WebhookDelivery.objects.get()
        assert outbox.publish([delivery.id, delivery.id]) == 2
        log = work_dir / "webhooks.log"

        def finished(outcome: str) -> int:
            lines = log.read_text().splitlines() if log.exists() else []
            return sum("send_webhook" in line and line.endswith(outcome) for line in lines)

        # The first task answered delivered; both doubled ones ran and found nothing to claim.
        wait_until(lambda: finished("'not_claimed'") == 2, 30, "the doubled tasks to run")
    finally:
        kill(worker)

    (only,) = received(receiver)
    assert only.verified(hook.secret)["data"]["id"] == str(session.id)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
