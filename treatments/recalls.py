"""The recall watcher: a regulator's recall that names a clinic's lot quarantines it at once,
and the clinic's admins are told; an admin then confirms it (the lot is recalled) or dismisses
it (the lot is free again).

Exactly once: a notice is one row per (source, recall, lot), unique
(`treatments_recallnotice_once`) and inserted with ON CONFLICT DO NOTHING under the lot's row
lock; only the transaction that inserted it quarantines the lot and queues the admins' emails
(through the notification outbox, whose own key keeps each to one). However often the feed is
polled, or by however many workers, one notice and one email per admin result.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Upper
from django.utils import timezone

from clinic import audit
from clinic.errors import InvalidInput, InvalidState
from clinic.models import Role, User
from scheduling.notifications import outbox
from scheduling.notifications.models import Notification, NotificationKind
from treatments import recall_feed, rules
from treatments.models import RecallNotice, RecallNoticeStatus, TipLot
from treatments.services import Recall, recall_of, recall_tip_lot

logger = logging.getLogger(__name__)

SOURCE = "openfda"
POLL_TASK = "treatments.poll_recall_feed"


@dataclass(frozen=True)
class PollResult:
    recalls: int
    notices_created: int


def poll() -> PollResult | None:
    """Read the feed once and open a notice for every lot it names that has none for that
    recall. None when the watcher is off (RECALL_FEED_URL empty) or the feed could not be
    read: then nothing changed, and the next poll tries again."""
    url = settings.RECALL_FEED_URL
    if not url:
        return None
    try:
        recalls = recall_feed.fetch(
            url,
            timeout=settings.RECALL_FEED_TIMEOUT_SECONDS,
            attempts=settings.RECALL_FEED_ATTEMPTS,
            backoff=settings.RECALL_FEED_RETRY_BACKOFF_SECONDS,
            max_pages=settings.RECALL_FEED_MAX_PAGES,
        )
    except recall_feed.FeedError as exc:
        logger.error("recall feed not read, nothing changed (retried at the next poll): %s", exc)
        return None
    created = sum(len(record_recall(recall)) for recall in recalls)
    logger.info("recall feed: %s recall(s), %s new notice(s)", len(recalls), created)
    return PollResult(recalls=len(recalls), notices_created=created)


def record_recall(recall: recall_feed.FeedRecall) -> list[RecallNotice]:
    """Open a notice for each lot of any clinic that the recall names and that has none for
    it yet. Returns the notices this call created."""
    tokens = rules.code_info_tokens(recall.code_info)
    if not tokens:
        return []
    lots = list(
        TipLot.objects.annotate(lot_upper=Upper("lot_number"))
        .filter(lot_upper__in=tokens)
        .exclude(recall_notices__source=SOURCE, recall_notices__source_id=recall.source_id)
        .values_list("pk", flat=True)
    )
    created = []
    for lot_id in lots:
        notice = _open_notice(lot_id, recall)
        if notice is not None:
            created.append(notice)
    return created


@transaction.atomic
def _open_notice(lot_id: uuid.UUID, recall: recall_feed.FeedRecall) -> RecallNotice | None:
    lot = TipLot.objects.select_for_update().get(pk=lot_id)
    notice = RecallNotice(
        clinic_id=lot.clinic_id,
        tip_lot=lot,
        source=SOURCE,
        source_id=recall.source_id,
        lot_number=lot.lot_number,
        reason=recall.reason,
        product_description=recall.product_description,
        feed_record=recall.record,
    )
    RecallNotice.objects.bulk_create([notice], ignore_conflicts=True)
    if not RecallNotice.objects.filter(pk=notice.pk).exists():
        return None  # another poll opened it first
    if lot.quarantined_at is None:
        lot.quarantined_at = timezone.now()
        lot.save(update_fields=["quarantined_at"])
    audit.record(
        actor=None,
        actor_label=POLL_TASK,
        clinic_id=lot.clinic_id,
        action="recall_notice.open",
        object_type="recall_notice",
        object_id=notice.pk,
        detail={"lot_number": lot.lot_number, "source": SOURCE, "source_id": recall.source_id},
    )
    _tell_admins(notice)
    logger.warning(
        "recall %s names lot %s of clinic %s: quarantined",
        recall.source_id,
        lot.lot_number,
        lot.clinic_id,
    )
    return notice


def _tell_admins(notice: RecallNotice) -> None:
    """Queue one `recall_notice` email to each admin of the clinic with an address."""
    admins = User.objects.filter(
        clinic_id=notice.clinic_id, role=Role.ADMIN, is_active=True
    ).exclude(email="")
    for admin in admins:
        outbox.queue_to_staff(
            kind=NotificationKind.RECALL_NOTICE, staff=admin, subject_key=subject_of(notice)
        )


def subject_of(notice: RecallNotice) -> str:
    return f"recall_notice:{notice.pk}"


def notice_text(notification: Notification) -> tuple[str, str]:
    """The admin's email about a notice (registered with the outbox's texts in apps.py).

    Staff are told the lot, the recall and what to do; nothing about patients."""
    notice_id = notification.subject_key.removeprefix("recall_notice:")
    notice = RecallNotice.objects.get(pk=notice_id)
    subject = f"Recall notice: cartridge lot {notice.lot_number} is quarantined"
    lines = [
        f"A recall published by {notice.source} (recall {notice.source_id}) names cartridge "
        f"lot {notice.lot_number}, which the clinic holds. The lot is quarantined: it cannot "
        "be used for treatment until the notice is resolved.",
        "",
        f"Product: {notice.product_description or '(not given)'}",
        f"Reason for recall: {notice.reason or '(not given)'}",
        "",
        f"Confirm the recall (the lot is recalled and treated patients are named) or dismiss "
        f"it (the lot is released): recall notice {notice.pk}.",
    ]
    return subject, "\n".join(lines)


def _release(lot: TipLot) -> None:
    """Lift the quarantine when no open notice holds the lot any more."""
    if not lot.recall_notices.filter(status=RecallNoticeStatus.OPEN).exists():
        lot.quarantined_at = None
        lot.save(update_fields=["quarantined_at"])


def _lock(notice: RecallNotice) -> tuple[TipLot, RecallNotice]:
    # The lot first, as the watcher locks it: one order, no deadlock.
    lot = TipLot.objects.select_for_update().get(pk=notice.tip_lot_id)
    notice = RecallNotice.objects.select_for_update().get(pk=notice.pk)
    if notice.status != RecallNoticeStatus.OPEN:
        raise InvalidState(f"The recall notice is already {notice.status}.")
    return lot, notice


@transaction.atomic
def confirm(*, actor: User, notice: RecallNotice, reason: str = "") -> Recall:
    """The recall applies: the lot is recalled exactly as POST /tip-lots/{id}/recall/ does
    (a lot already recalled stays as it was, and its recall is answered)."""
    lot, notice = _lock(notice)
    reason = reason.strip() or notice.reason or f"Recall {notice.source_id} ({notice.source})"
    if lot.recalled_at is None:
        recall = recall_tip_lot(actor=actor, lot=lot, reason=reason)
    else:
        recall = recall_of(lot)
    notice.status = RecallNoticeStatus.CONFIRMED
    notice.resolved_at = timezone.now()
    notice.resolved_by = actor
    notice.save(update_fields=["status", "resolved_at", "resolved_by"])
    lot.refresh_from_db()
    _release(lot)
    audit.record(
        actor=actor,
        action="recall_notice.confirm",
        object_type="recall_notice",
        object_id=notice.pk,
        detail={"lot_number": lot.lot_number, "source_id": notice.source_id},
    )
    return recall


@transaction.atomic
def dismiss(*, actor: User, notice: RecallNotice, reason: str) -> RecallNotice:
    """The recall does not concern this lot: the notice closes and the lot is free again
    (unless another open notice holds it)."""
    if not reason.strip():
        raise InvalidInput({"reason": ["Say why the notice does not apply."]})
    lot, notice = _lock(notice)
    notice.status = RecallNoticeStatus.DISMISSED
    notice.resolved_at = timezone.now()
    notice.resolved_by = actor
    notice.dismiss_reason = reason
    notice.save(update_fields=["status", "resolved_at", "resolved_by", "dismiss_reason"])
    _release(lot)
    audit.record(
        actor=actor,
        action="recall_notice.dismiss",
        object_type="recall_notice",
        object_id=notice.pk,
        detail={"lot_number": lot.lot_number, "source_id": notice.source_id},
    )
    return notice
