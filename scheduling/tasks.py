"""Notification tasks. Thin: each calls scheduling.notifications and logs what it did.

Every task is safe to run twice or to be killed half-way (acks_late, and the outbox claims
each message in PostgreSQL before it is sent); the beat scan re-finds whatever a lost task
would have done.
"""

from __future__ import annotations

import logging
from uuid import UUID

from celery import shared_task

from scheduling.notifications import scans, sender
from scheduling.webhooks import sender as webhook_sender

logger = logging.getLogger(__name__)


@shared_task(name="scheduling.send_notification")
def send_notification(*, notification_id: str) -> str:
    """Send one outbox row, if it is still pending and due."""
    try:
        pk = UUID(notification_id)
    except ValueError:
        logger.warning("send_notification: %r is not a notification id", notification_id)
        return sender.MISSING
    outcome = sender.send(pk)
    if outcome == sender.MISSING:
        logger.info("notification %s is gone; nothing to send", pk)
    return outcome


@shared_task(name="scheduling.send_due_notifications")
def send_due_notifications() -> int:
    """Send due rows (one batch); returns how many went out."""
    outcomes = sender.send_due()
    logger.info("sent due notifications: %s", dict(outcomes))
    return outcomes[sender.SENT]


@shared_task(name="scheduling.scan_notifications")
def scan_notifications() -> dict[str, int]:
    """The beat's scan: create due notifications, refresh flags, reclaim, send."""
    result = scans.scan()
    logger.info("notification scan: %s", result)
    return result


@shared_task(name="scheduling.send_webhook")
def send_webhook(*, delivery_id: str) -> str:
    """Send one webhook delivery, if it is still pending and due."""
    try:
        pk = UUID(delivery_id)
    except ValueError:
        logger.warning("send_webhook: %r is not a delivery id", delivery_id)
        return webhook_sender.MISSING
    outcome = webhook_sender.send(pk)
    if outcome == webhook_sender.MISSING:
        logger.info("webhook delivery %s is gone; nothing to send", pk)
    return outcome


@shared_task(name="scheduling.scan_webhooks")
def scan_webhooks() -> dict[str, int]:
    """The beat's webhook scan: reclaim stuck deliveries, send what is due."""
    result = webhook_sender.scan()
    logger.info("webhook scan: %s", result)
    return result
