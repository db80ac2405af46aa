"""RFC 9457 problem details: the one exception handler and the error body's shape."""

from __future__ import annotations

import logging
import sys
from typing import Any

import redis
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from django_guid import get_guid
from drf_spectacular.utils import extend_schema_field
from kombu.exceptions import OperationalError as BrokerOperationalError
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from clinic.api.fields import BooleanField, CharField, IntegerField, Serializer, UUIDField
from clinic.errors import DomainError, error_for_integrity_error

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://skinpen-clinic.example/problems/"

TITLES = {
    400: "Invalid request",
    401: "Not authenticated",
    403: "Permission denied",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Unprocessable request",
    429: "Too many requests",
    500: "Server error",
    503: "Service unavailable",
}

DEFAULT_CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "throttled",
    500: "server_error",
    503: "service_unavailable",
}


def problem_body(
    status_code: int, code: str | None = None, detail: str | None = None, **extra: Any
) -> dict[str, Any]:
    code = code or DEFAULT_CODES.get(status_code, "error")
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": TITLES.get(status_code, "Error"),
        "status": status_code,
        "detail": detail or TITLES.get(status_code, "Error"),
        "code": code,
    }
    body.update(extra)
    return body


def problem_response(
    status_code: int, code: str | None = None, detail: str | None = None, **extra: Any
) -> Response:
    return Response(
        problem_body(status_code, code, detail, **extra),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )


# --- Outages: a part that does not answer is 503 with Retry-After, never a 500 ---------------


def unavailable_part(exc: BaseException | None) -> str | None:
    """The part of the service an exception says is not answering ("database", "broker"), or
    None for anything else (a bug, answered 500).

    PostgreSQL stopped, restarted (its connections terminated) or unreachable raises Django's
    OperationalError or InterfaceError (a connection already closed); so do a statement timeout,
    a deadlock and a serialization failure, which a retry also cures."""
    while exc is not None:
        if isinstance(exc, (OperationalError, InterfaceError)):
            return "database"
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, BrokerOperationalError)):
            return "broker"
        exc = exc.__cause__
    return None


def unavailable_body(part: str) -> dict[str, Any]:
    return problem_body(
        503,
        "service_unavailable",
        f"The {part} is not answering. Retry in a few seconds.",
        **{part: "unavailable"},
    )


def retry_after() -> str:
    return str(settings.SERVICE_UNAVAILABLE_RETRY_AFTER_SECONDS)


def _field_errors(data: Any) -> dict[str, list[str]]:
    """DRF's nested error structures flattened to {"field": ["message"]}, dotted for nesting."""
    out: dict[str, list[str]] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, list):
            if all(not isinstance(v, (dict, list)) for v in value):
                out.setdefault(prefix or "non_field_errors", []).extend(str(v) for v in value)
            else:
                for i, sub in enumerate(value):
                    if sub:
                        walk(f"{prefix}.{i}" if prefix else str(i), sub)
        else:
            out.setdefault(prefix or "non_field_errors", []).append(str(value))

    walk("", data)
    return out


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    # Whatever went wrong, nothing the request started is committed.
    set_rollback()

    part = unavailable_part(exc)
    if part is not None:
        logger.warning("%s not answering: %s", part, exc)
        response = Response(unavailable_body(part), status=503, content_type=PROBLEM_CONTENT_TYPE)
        response["Retry-After"] = retry_after()
        return response

    if isinstance(exc, IntegrityError):
        mapped = error_for_integrity_error(exc)
        if mapped is None:
            logger.exception("Unmapped integrity error")
            return problem_response(409, "conflict", "The change conflicts with existing data.")
        exc = mapped

    if isinstance(exc, RequestDataTooBig):
        # Raised by Django when the body passes DATA_UPLOAD_MAX_MEMORY_SIZE: the client's fault.
        return problem_response(413, "request_too_large", "The request body is too large.")

    if isinstance(exc, DomainError):
        response = problem_response(exc.status, exc.code, exc.detail, **exc.extra)
        for name, value in exc.headers.items():
            response[name] = value
        return response

    if isinstance(exc, DjangoValidationError):
        errors = (
            {k: [str(m) for m in v] for k, v in exc.message_dict.items()}
            if hasattr(exc, "error_dict")
            else {"non_field_errors": [str(m) for m in exc.messages]}
        )
        return problem_response(400, "invalid", "Invalid input.", errors=errors)

    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, exceptions.APIException):
        headers: dict[str, str] = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
        status_code = exc.status_code
        if isinstance(exc, exceptions.ValidationError):
            response = problem_response(
                400, "invalid", "Invalid input.", errors=_field_errors(exc.detail)
            )
        elif isinstance(exc, exceptions.ParseError):
            response = problem_response(400, "invalid", str(exc.detail))
        else:
            code = {
                exceptions.NotAuthenticated: "not_authenticated",
                exceptions.AuthenticationFailed: "authentication_failed",
                exceptions.PermissionDenied: "permission_denied",
                exceptions.NotFound: "not_found",
                exceptions.MethodNotAllowed: "method_not_allowed",
                exceptions.Throttled: "throttled",
            }.get(type(exc)) or DEFAULT_CODES.get(status_code, "error")
            detail = exc.detail if isinstance(exc.detail, str) else None
            response = problem_response(status_code, code, detail and str(detail))
        for name, value in headers.items():
            response[name] = value
        return response

    logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
    return problem_response(
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        "server_error",
        "An unexpected error occurred. Quote the request id to support.",
        request_id=get_guid(),
    )


def _json_problem(status_code: int, **extra: Any) -> JsonResponse:
    return JsonResponse(
        problem_body(status_code, **extra), status=status_code, content_type=PROBLEM_CONTENT_TYPE
    )


# Django-level handlers (URLs that match no view, CSRF, crashes outside DRF).
def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _json_problem(400)


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _json_problem(403)


def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _json_problem(404)


def handler500(request: HttpRequest) -> JsonResponse:
    # Django calls this while handling the exception (from a middleware, or a view that is not
    # DRF's): an outage there is a 503 too.
    part = unavailable_part(sys.exc_info()[1])
    if part is not None:
        return service_unavailable(part)
    return _json_problem(500, request_id=get_guid())


def service_unavailable(part: str) -> JsonResponse:
    response = JsonResponse(unavailable_body(part), status=503, content_type=PROBLEM_CONTENT_TYPE)
    response["Retry-After"] = retry_after()
    return response


_MESSAGES = {"type": "array", "items": {"type": "string"}}


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {
            "oneOf": [_MESSAGES, {"type": "object", "additionalProperties": _MESSAGES}]
        },
        "description": "invalid: the messages by field (dotted for nesting). A series plan's "
        'failure names the first session that cannot be placed: {"sessions": {"<number>": '
        '["<code>"]}}.',
    }
)
class FieldErrorsField(serializers.DictField):
    pass


class ProblemSerializer(Serializer):
    """The error body, for the OpenAPI schema: RFC 9457 members, `code`, and the members some
    codes add."""

    type = CharField()
    title = CharField()
    status = IntegerField()
    detail = CharField()
    code = CharField()
    errors = FieldErrorsField(required=False)
    reasons = serializers.ListField(
        child=CharField(),
        required=False,
        help_text="patient_not_eligible: the eligibility reason codes.",
    )
    warnings = serializers.ListField(
        child=CharField(),
        required=False,
        help_text="warnings_not_acknowledged: the screening warning codes not acknowledged.",
    )
    consent_forms = serializers.ListField(
        child=UUIDField(),
        required=False,
        help_text="consent_required: the ids of the consent form versions not signed.",
    )
    sessions = serializers.ListField(
        child=UUIDField(),
        required=False,
        help_text="sessions_conflict: the ids of the active sessions the time off overlaps.",
    )
    otp_required = BooleanField(
        required=False,
        help_text="authentication_failed on login: the password was right, the TOTP code is "
        "missing or wrong.",
    )
    request_id = CharField(required=False, help_text="server_error: quote it to support.")
    database = CharField(
        required=False,
        help_text="service_unavailable: `unavailable` when the database is not answering.",
    )
    broker = CharField(
        required=False,
        help_text="service_unavailable: `unavailable` when the broker is not answering.",
    )
