"""Reads from a read replica, with read-your-writes for the request that wrote.

Switched on by DATABASE_REPLICA_URL (clinic/settings.py adds the `replica` alias, this router
and `ReplicaReadsMiddleware`). Only a request's reads may go to the replica, and only while
the request has written nothing and is in no transaction on the primary:

- a request starts reading from the replica (the middleware marks it);
- its first write (any model, any INSERT/UPDATE/DELETE through the ORM) sends every later read
  of the same request to the primary, so a client that writes and reads in one request sees
  its write (an audited read writes its audit rows, so what follows reads the primary);
- inside `transaction.atomic()` on the primary every read goes there too (services lock rows
  with select_for_update and decide on what they read);
- Celery tasks, management commands and the shell never use the replica: they claim work by
  conditional UPDATE and must decide on the primary's rows.

A client that writes in one request and reads in the next may read a replica a few hundred
milliseconds behind; streaming replication's lag is the bound (README "Scaling out").
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse

PRIMARY = "default"
REPLICA = "replica"

# True while a request may read from the replica: set by the middleware, cleared on a write.
_replica_reads: ContextVar[bool] = ContextVar("replica_reads", default=False)


class ReplicaRouter:
    def db_for_read(self, model: Any, **hints: Any) -> str:
        if _replica_reads.get() and not connections[PRIMARY].in_atomic_block:
            return REPLICA
        return PRIMARY

    def db_for_write(self, model: Any, **hints: Any) -> str:
        _replica_reads.set(False)
        return PRIMARY

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # one database, two copies of it

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == PRIMARY


class ReplicaReadsMiddleware:
    """Lets the request read from the replica until it writes (first in MIDDLEWARE)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Writes are not routed through the ORM's write path when they are raw SQL, so a
        # request that can write reads the primary from the start.
        allowed = request.method in ("GET", "HEAD", "OPTIONS")
        token = _replica_reads.set(allowed)
        try:
            response = self.get_response(request)
        finally:
            _replica_reads.reset(token)
        if response.streaming and allowed:
            response.streaming_content = _streamed(response.streaming_content)  # type: ignore[attr-defined]
        return response


def _streamed(chunks: Any) -> Any:
    """A streamed body is read after the view returned: each step may read the replica too."""
    iterator = iter(chunks)
    while True:
        token = _replica_reads.set(True)
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        finally:
            _replica_reads.reset(token)
        yield chunk


def reads_alias(*, stale_ok: bool = False) -> str:
    """The alias a raw-SQL read should use, as the router would route an ORM read. An export
    (`stale_ok`) reads the replica whenever there is one: it reports committed history, and its
    own audit event, written on the primary, is not part of it."""
    if f"{__name__}.ReplicaRouter" not in settings.DATABASE_ROUTERS:
        return PRIMARY
    if stale_ok and not connections[PRIMARY].in_atomic_block:
        return REPLICA
    return ReplicaRouter().db_for_read(None)
