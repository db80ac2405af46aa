"""Which worker processes are alive, so a row claimed by a dead one is retried at once.

An outbox row is claimed by a conditional UPDATE before its message leaves; if the process that
claimed it dies mid-send, only a timeout (NOTIFICATION_CLAIM_TIMEOUT_SECONDS) used to tell. Each
Celery worker process now keeps a heartbeat in Redis (a key with a short expiry, refreshed by a
daemon thread) and stamps its identity on what it claims. The scan puts back a row whose claimer's
heartbeat has lapsed after only WORKER_DEAD_AFTER_SECONDS; a row claimed by a process without a
heartbeat (a test, a shell) still waits for the timeout. When Redis does not answer, nobody is
taken for dead: the timeout remains the safety net.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Iterable

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "skinpen:alive:"

_state: dict[str, object] = {"pid": None, "identity": ""}


def identity() -> str:
    """This process's name for claims, or "" when it keeps no heartbeat."""
    if _state["pid"] != os.getpid():
        return ""
    return str(_state["identity"])


def _client() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
    )


def _beat(key: str, stop: threading.Event) -> None:
    client = _client()
    interval = settings.WORKER_HEARTBEAT_SECONDS
    while not stop.is_set():
        try:
            client.set(key, "1", ex=max(int(interval * 3), 1))
        except redis.RedisError as error:
            logger.warning("worker heartbeat not written: %s", error)
        stop.wait(interval)


def start_heartbeat() -> threading.Event:
    """Start this process's heartbeat (a worker process, after the fork); returns its stop."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    stop = threading.Event()
    key = KEY_PREFIX + name
    try:
        _client().set(key, "1", ex=max(int(settings.WORKER_HEARTBEAT_SECONDS * 3), 1))
    except redis.RedisError as error:
        logger.warning("worker heartbeat not written: %s", error)
    threading.Thread(target=_beat, args=(key, stop), name="heartbeat", daemon=True).start()
    _state.update(pid=os.getpid(), identity=name)
    return stop


def stop_heartbeat(stop: threading.Event) -> None:
    stop.set()
    name = str(_state["identity"])
    _state.update(pid=None, identity="")
    with contextlib.suppress(redis.RedisError):
        _client().delete(KEY_PREFIX + name)


def dead(identities: Iterable[str]) -> set[str]:
    """The claimers among `identities` whose heartbeat has lapsed (none when Redis is down)."""
    names = sorted({name for name in identities if name})
    if not names:
        return set()
    try:
        alive = _client().mget([KEY_PREFIX + name for name in names])
    except redis.RedisError as error:
        logger.warning("worker liveness unknown (%s): waiting for the claim timeout", error)
        return set()
    return {name for name, value in zip(names, alive, strict=True) if value is None}
