"""Writing webhook deliveries, in the transaction of the change, and publishing their tasks.

See the package docstring (scheduling.webhooks) for how a delivery goes out once.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from scheduling.models import Session
from scheduling.notifications.outbox import publish_tasks
from scheduling.webhooks.models import WebhookDelivery
from scheduling.webhooks.rules import MESSAGE_ID_PREFIX

logger = logging.getLogger(__name__)

SEND_TASK = "scheduling.send_webhook"


def new_message_id() -> str:
    return f"{MESSAGE_ID_PREFIX}{uuid.uuid4().hex}"


def emit(
    event_type: str, *, clinic_id: UUID, subject_id: UUID, **related: UUID | None
) -> list[WebhookDelivery]:
    """One delivery per live endpoint of the clinic subscribed to `event_type`.

    Call inside the transaction that makes the change: the deliveries commit (or roll back)
    with it. `related` are the ids a receiver may want (series, patient, provider...); the
    payload carries ids only, never names, contact details or clinical detail. The send tasks
    are published after commit; a publish that fails is logged and the scan sends the rows.
    """
    endpoint_ids = [pk for pk, events in live_endpoints(clinic_id) if event_type in events]
    if not endpoint_ids:
        return []
    now = timezone.now()
    payload = payload_text(
        event_type,
        now.isoformat().replace("+00:00", "Z"),
        {
            "id": str(subject_id),
            "clinic": str(clinic_id),
            **{name: str(value) if value is not None else None for name, value in related.items()},
        },
    )
    rows = [
        WebhookDelivery(
            clinic_id=clinic_id,
            endpoint_id=endpoint_id,
            event_type=event_type,
            payload=payload,
            message_id=new_message_id(),
            next_attempt_at=now,
        )
        for endpoint_id in endpoint_ids
    ]
    WebhookDelivery.objects.bulk_create(rows)
    ids = [row.pk for row in rows]
    transaction.on_commit(lambda: publish(ids))
    return rows


_LIVE_ENDPOINTS = (
    "SELECT id, events FROM scheduling_webhookendpoint WHERE clinic_id = %s AND active"
)


def live_endpoints(clinic_id: UUID) -> list[tuple[UUID, list[str]]]:
    """(id, events) of the clinic's live endpoints, as the transaction sees them now."""
    with connection.cursor() as cursor:
        cursor.execute(_LIVE_ENDPOINTS, [clinic_id])
        return cursor.fetchall()


def payload_text(event_type: str, timestamp: str, data: dict[str, Any]) -> str:
    return json.dumps(
        {"type": event_type, "timestamp": timestamp, "data": data}, separators=(",", ":")
    )


def publish(delivery_ids: Iterable[UUID], *, countdown: float | None = None) -> int:
    """Publish the send task of each delivery; never raises. Returns how many were published."""
    calls = [(SEND_TASK, {"delivery_id": str(pk)}) for pk in delivery_ids]
    published = publish_tasks(calls, countdown=countdown)
    if published < len(calls):
        logger.warning(
            "could not publish %s of %s webhook task(s); the scan will send them",
            len(calls) - published,
            len(calls),
        )
    return published


def emit_session(event_type: str, session: Session) -> list[WebhookDelivery]:
    """A session event: the session's id with its series, patient, provider and room."""
    return emit(
        event_type,
        clinic_id=session.clinic_id,
        subject_id=session.pk,
        series=session.series_id,
        patient=session.patient_id,
        provider=session.provider_id,
        room=session.room_id,
    )
