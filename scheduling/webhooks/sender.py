"""Sending the webhook outbox: claim a delivery, POST it signed, record the answer, retry with
backoff, reclaim deliveries whose worker died, and the beat's scan over all of that.

See the package docstring (scheduling.webhooks) for how a delivery goes out once.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from datetime import datetime, timedelta
from uuid import UUID

import httpx
from django.conf import settings
from django.db.models import F, QuerySet
from django.utils import timezone
from standardwebhooks import Webhook

from clinic import audit
from clinic.models import AuditOutcome
from scheduling.webhooks import guard, outbox, rules
from scheduling.webhooks.models import WebhookDelivery
from scheduling.webhooks.rules import WebhookDeliveryStatus

logger = logging.getLogger(__name__)

# Outcomes of `send`.
DELIVERED = "delivered"
RETRY = "retry"
FAILED = "failed"
NOT_CLAIMED = "not_claimed"
MISSING = "missing"

USER_AGENT = "skinpen-clinic-webhooks/1"


def send(delivery_id: UUID) -> str:
    """Claim one due delivery, POST it and record the outcome.

    Runs outside any transaction (a task): the claim commits before the request leaves, and
    `delivered` commits in one statement right after the receiver's 2xx.
    """
    claimed_at = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id,
        status=WebhookDeliveryStatus.PENDING,
        next_attempt_at__lte=claimed_at,
    ).update(
        status=WebhookDeliveryStatus.SENDING, claimed_at=claimed_at, attempts=F("attempts") + 1
    )
    if not claimed:
        # Delivered, claimed by another worker, not yet due, or gone.
        if WebhookDelivery.objects.filter(pk=delivery_id).exists():
            return NOT_CLAIMED
        return MISSING
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.active:
        return _give_up(delivery, claimed_at, None, "endpoint deleted or deactivated")
    try:
        target = guard.check(endpoint.url)
    except guard.RefusedURL as exc:
        # Not retried: the URL itself is refused (it resolves to a private address now).
        return _give_up(delivery, claimed_at, None, f"URL refused: {exc}")
    try:
        status_code = _post(target, delivery, endpoint.secret)
    except httpx.HTTPError as exc:
        return _record_failure(delivery, claimed_at, None, f"{type(exc).__name__}: {exc}")
    if not rules.delivered(status_code):
        return _record_failure(delivery, claimed_at, status_code, f"answered {status_code}")
    # Any status but delivered: a reclaimed row that this (slow) worker did deliver is delivered.
    WebhookDelivery.objects.filter(pk=delivery.pk).exclude(
        status=WebhookDeliveryStatus.DELIVERED
    ).update(
        status=WebhookDeliveryStatus.DELIVERED,
        delivered_at=timezone.now(),
        last_status_code=status_code,
        last_error="",
    )
    _audit(delivery, AuditOutcome.SUCCESS, status_code)
    return DELIVERED


def signed_headers(delivery: WebhookDelivery, secret: str, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers: webhook-id (the same on every try), webhook-timestamp
    (this try's, in seconds) and webhook-signature (v1, HMAC-SHA256 of id.timestamp.body)."""
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(delivery.message_id, at, delivery.payload),
    }


def _post(target: guard.Target, delivery: WebhookDelivery, secret: str) -> int:
    """POST the payload; the status code. Redirects are not followed, proxies not used, the
    response body is never read; every phase has the short WEBHOOK_TIMEOUT_SECONDS."""
    headers = signed_headers(delivery, secret, timezone.now())
    if target.host_header:
        headers["host"] = target.host_header
    extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else None
    timeout = httpx.Timeout(settings.WEBHOOK_TIMEOUT_SECONDS)
    with (
        httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
        client.stream(
            "POST",
            target.url,
            content=delivery.payload.encode(),
            headers=headers,
            extensions=extensions,
        ) as response,
    ):
        return response.status_code


def _mine(delivery: WebhookDelivery, claimed_at: datetime) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(
        pk=delivery.pk, status=WebhookDeliveryStatus.SENDING, claimed_at=claimed_at
    )


def _give_up(
    delivery: WebhookDelivery, claimed_at: datetime, status_code: int | None, error: str
) -> str:
    _mine(delivery, claimed_at).update(
        status=WebhookDeliveryStatus.FAILED,
        last_status_code=status_code,
        last_error=error[: rules.LAST_ERROR_MAX_LENGTH],
    )
    _audit(delivery, AuditOutcome.FAILED, status_code)
    logger.error("webhook delivery %s failed for good: %s", delivery.pk, error)
    return FAILED


def retry_delay(attempts: int) -> timedelta:
    return rules.retry_delay(
        attempts,
        base_seconds=settings.WEBHOOK_RETRY_BASE_SECONDS,
        max_seconds=settings.WEBHOOK_RETRY_MAX_SECONDS,
    )


def _record_failure(
    delivery: WebhookDelivery, claimed_at: datetime, status_code: int | None, error: str
) -> str:
    if delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        return _give_up(delivery, claimed_at, status_code, error)
    delay = retry_delay(delivery.attempts)
    retried = _mine(delivery, claimed_at).update(
        status=WebhookDeliveryStatus.PENDING,
        next_attempt_at=timezone.now() + delay,
        last_status_code=status_code,
        last_error=error[: rules.LAST_ERROR_MAX_LENGTH],
    )
    logger.warning("webhook delivery %s attempt %s: %s", delivery.pk, delivery.attempts, error)
    if retried:
        # The retry's own task; if the broker loses it, the scan finds the row when it is due.
        outbox.publish([delivery.pk], countdown=delay.total_seconds())
    return RETRY


def _audit(delivery: WebhookDelivery, outcome: str, status_code: int | None) -> None:
    # The payload names the patient by id only; the audit trail says it left, and where to.
    data = json.loads(delivery.payload).get("data", {})
    patient = data.get("patient")
    audit.record(
        actor=None,
        actor_label=outbox.SEND_TASK,
        clinic_id=delivery.clinic_id,
        action="webhook.deliver",
        object_type="webhook_delivery",
        object_id=delivery.pk,
        patient_id=UUID(patient) if patient else None,
        outcome=outcome,
        detail={
            "event_type": delivery.event_type,
            "endpoint": str(delivery.endpoint_id),
            "status_code": status_code,
        },
    )


# --- Batch sending, reclaiming, the scan -------------------------------------------------------


def send_due(*, limit: int | None = None, budget_seconds: float | None = None) -> Counter[str]:
    """Send due deliveries, oldest first, at most `limit`, stopping once `budget_seconds` have
    passed (a slow receiver must not hold the scan past the task's time limit)."""
    limit = limit or settings.WEBHOOK_SEND_BATCH
    budget = budget_seconds if budget_seconds is not None else settings.WEBHOOK_SCAN_BUDGET_SECONDS
    ids = list(
        WebhookDelivery.objects.filter(
            status=WebhookDeliveryStatus.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by("next_attempt_at", "id")
        .values_list("id", flat=True)[:limit]
    )
    started = time.monotonic()
    outcomes: Counter[str] = Counter()
    for delivery_id in ids:
        if time.monotonic() - started > budget:
            break
        outcomes[send(delivery_id)] += 1
    return outcomes


def reclaim_stuck() -> int:
    """Put back deliveries whose sender died mid-send (claimed longer ago than the timeout);
    one out of attempts ends `failed`."""
    stuck = WebhookDelivery.objects.filter(
        status=WebhookDeliveryStatus.SENDING,
        claimed_at__lt=timezone.now() - timedelta(seconds=settings.WEBHOOK_CLAIM_TIMEOUT_SECONDS),
    )
    limit = settings.WEBHOOK_MAX_ATTEMPTS
    failed = stuck.filter(attempts__gte=limit).update(
        status=WebhookDeliveryStatus.FAILED, last_error="sender lost mid-send, out of attempts"
    )
    back = stuck.filter(attempts__lt=limit).update(
        status=WebhookDeliveryStatus.PENDING, last_error="sender lost mid-send; reclaimed"
    )
    if failed or back:
        logger.warning("reclaimed %s stuck webhook deliveries, %s out of attempts", back, failed)
    return failed + back


def scan() -> dict[str, int]:
    """The beat's webhook scan, from the database alone: reclaim, then send what is due."""
    result = {"reclaimed": reclaim_stuck()}
    result.update({f"send_{outcome}": count for outcome, count in send_due().items()})
    return result
