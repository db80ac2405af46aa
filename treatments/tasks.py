"""Treatment tasks. Thin: each calls a service and logs what it did."""

from __future__ import annotations

import logging

from celery import shared_task

from treatments import recalls

logger = logging.getLogger(__name__)


@shared_task(name=recalls.POLL_TASK)
def poll_recall_feed() -> dict[str, int] | None:
    """The beat's recall watcher: read the feed once, open notices for the lots it names.

    Safe to run twice at once: a notice is unique per (recall, lot) and only its inserter
    quarantines and emails. None when the watcher is off or the feed could not be read."""
    result = recalls.poll()
    if result is None:
        return None
    return {"recalls": result.recalls, "notices_created": result.notices_created}
