"""Housekeeping tasks of the clinic app. Thin: each calls a service and logs what it did."""

import logging

from celery import shared_task

from clinic import checkpoints, services

logger = logging.getLogger(__name__)


@shared_task(name="clinic.purge_idempotency_keys")
def purge_idempotency_keys() -> int:
    """Idempotency keys are kept IDEMPOTENCY_KEY_TTL_HOURS (at least 24 h by contract)."""
    deleted = services.purge_expired_idempotency_keys()
    deleted_counters = services.delete_stale_login_counters()
    deleted_tokens = services.delete_expired_tokens()
    logger.info(
        "purged %s idempotency keys, %s login counters, %s expired tokens",
        deleted,
        deleted_counters,
        deleted_tokens,
    )
    return deleted


@shared_task(name="clinic.write_audit_checkpoints")
def write_audit_checkpoints() -> int:
    """Sign the head of every chain that moved since its last checkpoint (clinic/checkpoints.py)."""
    written = checkpoints.write(reason=checkpoints.Reason.PERIODIC)
    logger.info("wrote %s audit checkpoints", len(written))
    return len(written)
