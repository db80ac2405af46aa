"""`Idempotency-Key` on POST, decided by PostgreSQL.

The whole request runs in one transaction that first takes a transaction-scoped advisory lock
on (user, key). A concurrent request with the same key cannot take it and answers 409
`idempotency_in_progress`. The first response is stored in the same transaction as the effect,
so a crash leaves neither (and a retry runs again), and a replay finds both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction
from rest_framework.request import Request
from rest_framework.response import Response

from clinic.api.problems import PROBLEM_CONTENT_TYPE, problem_response
from clinic.models import IdempotencyKey

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


class _Discard(Exception):
    """Roll back the effects of a handler that answered with an error."""

    def __init__(self, response: Response) -> None:
        self.response = response


def fingerprint(request: Request) -> str:
    """Method, path and body: the same key with anything else is a different request."""
    body = request._request.body  # read before DRF parses, so it stays available
    try:
        canonical = json.dumps(json.loads(body or b"null"), sort_keys=True, separators=(",", ":"))
        body = canonical.encode()
    except (ValueError, UnicodeDecodeError):
        pass
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode(), body):
        digest.update(part)
        digest.update(b"\x00")
    return digest.hexdigest()


def _replay(stored: IdempotencyKey) -> Response:
    content_type = PROBLEM_CONTENT_TYPE if stored.response_status >= 400 else None
    response = Response(
        stored.response_body, status=stored.response_status, content_type=content_type
    )
    response["Idempotent-Replayed"] = "true"
    return response


def run_idempotently(
    request: Request,
    key: str,
    handler: Callable[[], Response],
    handle_exception: Callable[[Exception], Response],
) -> Response:
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        return problem_response(
            400, "invalid", f"{HEADER} must be at most {MAX_KEY_LENGTH} printable characters."
        )
    user = request.user
    request_fingerprint = fingerprint(request)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))",
                [f"idempotency:{user.pk}:{key}"],
            )
            (locked,) = cursor.fetchone()
        if not locked:
            return problem_response(
                409,
                "idempotency_in_progress",
                "A request with this Idempotency-Key is still being processed. Retry shortly.",
            )
        stored = IdempotencyKey.objects.filter(user=user, key=key).first()
        if stored is not None:
            if stored.fingerprint != request_fingerprint:
                return problem_response(
                    422,
                    "idempotency_key_reused",
                    "This Idempotency-Key was used with a different request.",
                )
            return _replay(stored)

        try:
            with transaction.atomic():
                response = handler()
                if response.status_code >= 400:
                    raise _Discard(response)
        except _Discard as discarded:
            response = discarded.response
        except Exception as exc:
            response = handle_exception(exc)
        if response.status_code >= 500:
            # Not stored: the failure was ours, and a retry deserves a real attempt.
            return response
        IdempotencyKey.objects.create(
            user=user,
            key=key,
            fingerprint=request_fingerprint,
            response_status=response.status_code,
            response_body=response.data,
        )
        return response


def header_value(request: Request) -> Any:
    return request.headers.get(HEADER)
