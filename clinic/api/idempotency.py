"""`Idempotency-Key` on POST, as a middleware (pretix's IdempotencyMiddleware), decided by
PostgreSQL.

For a signed-in POST with a key to one of our API views, the whole view runs in one transaction
that first takes a transaction-scoped advisory lock on (user, key). A concurrent request with
the same key cannot take it and answers 409 `idempotency_in_progress`. The first response is
stored in the same transaction as the effect, so a crash leaves neither (and a retry runs
again), and a replay finds both. A request refused before its handler ran (401, 403, 429) is
answered as usual and stored nowhere, as without a key.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from rest_framework import exceptions
from rest_framework.request import Request

from clinic import audit
from clinic.api.parsers import loads
from clinic.api.problems import PROBLEM_CONTENT_TYPE, problem_body
from clinic.api.renderers import JSONRenderer
from clinic.models import IdempotencyKey

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# Visible ASCII, spaces only inside: a Structured Field string, as the IETF Idempotency-Key
# draft defines the header (a header's surrounding whitespace is not part of its value). The
# schema publishes the same pattern.
KEY_PATTERN = r"^[!-~]([ -~]*[!-~])?$"
_KEY = re.compile(KEY_PATTERN)


# Set on the Django request by ClinicAPIView.initial() once authentication, roles and throttles
# let the request through to its handler: only a handler's answer is stored.
HANDLER_REACHED = "_clinic_idempotent_handler_reached"


def fingerprint(request: HttpRequest) -> str:
    """Method, path and body: the same key with anything else is a different request."""
    body = request.body
    try:
        canonical = json.dumps(loads(body or b"null"), sort_keys=True, separators=(",", ":"))
        body = canonical.encode()
    except ValueError:  # not JSON, or nested too deeply (the view answers 400): the bytes
        pass
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode(), body):
        digest.update(part)
        digest.update(b"\x00")
    return digest.hexdigest()


def _json(status: int, body: Any, **headers: str) -> HttpResponse:
    content_type = PROBLEM_CONTENT_TYPE if status >= 400 else "application/json"
    response = HttpResponse(JSONRenderer().render(body), status=status, content_type=content_type)
    for name, value in headers.items():
        response[name] = value
    return response


def _problem(status: int, code: str, detail: str) -> HttpResponse:
    return _json(status, problem_body(status, code, detail))


def _user_of(request: HttpRequest, view_class: Any) -> Any:
    """The signed-in user as the view will see them (its own authenticators), or None."""
    authenticators = [auth() for auth in view_class.authentication_classes]
    if not authenticators:
        return None  # a public view (the token login): keys are scoped to a user
    try:
        user = Request(request, authenticators=authenticators).user
    except exceptions.APIException:
        return None  # the view answers 401 itself
    return user if user.is_authenticated else None


class IdempotencyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Any, args: Any, kwargs: Any
    ) -> HttpResponse | None:
        key = request.headers.get(HEADER)
        view_class = getattr(view, "cls", None)
        if request.method != "POST" or key is None or not getattr(view_class, "idempotent", False):
            return None
        user = _user_of(request, view_class)
        if user is None:
            return None
        # A blank key is a client's bug, not "no key": taken as none, its retry would book twice.
        if len(key) > MAX_KEY_LENGTH or not _KEY.match(key):
            return _problem(
                400,
                "invalid",
                f"{HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters (spaces "
                "only between them).",
            )
        try:
            request_fingerprint = fingerprint(request)
        except RequestDataTooBig:
            return None  # the view answers 413, as without a key
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))",
                    [f"idempotency:{user.pk}:{key}"],
                )
                (locked,) = cursor.fetchone()
            if not locked:
                return _problem(
                    409,
                    "idempotency_in_progress",
                    "A request with this Idempotency-Key is still being processed. Retry shortly.",
                )
            stored = IdempotencyKey.objects.filter(user=user, key=key).first()
            if stored is not None:
                if stored.fingerprint != request_fingerprint:
                    return _problem(
                        422,
                        "idempotency_key_reused",
                        "This Idempotency-Key was used with a different request.",
                    )
                return _json(
                    stored.response_status, stored.response_body, **{"Idempotent-Replayed": "true"}
                )
            return self._first_time(request, view, args, kwargs, user, key, request_fingerprint)

    @staticmethod
    def _first_time(
        request: HttpRequest,
        view: Any,
        args: Any,
        kwargs: Any,
        user: Any,
        key: str,
        request_fingerprint: str,
    ) -> HttpResponse:
        savepoint = transaction.savepoint()
        with audit.keeping_refusals() as refusals:
            response = view(request, *args, **kwargs)
        if hasattr(response, "render"):
            response.render()
        handled = getattr(request, HANDLER_REACHED, False)
        if handled and response.status_code >= 400:
            # An error answer leaves no effect behind (it is stored, below, unless ours: 5xx),
            # but the refusal's audit event stays.
            transaction.savepoint_rollback(savepoint)
            audit.restore_refusals(refusals)
        else:
            transaction.savepoint_commit(savepoint)
        if not handled or response.status_code >= 500:
            return response
        IdempotencyKey.objects.create(
            user=user,
            key=key,
            fingerprint=request_fingerprint,
            response_status=response.status_code,
            response_body=getattr(response, "data", None),
        )
        return response
