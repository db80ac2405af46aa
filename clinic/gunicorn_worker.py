"""gunicorn's workers, answering the errors gunicorn itself raises as problem+json.

gunicorn refuses a request it cannot parse (a request line over `limit_request_line`: 414,
too many or too large headers: 431, a malformed request line or header: 400, ...) before
Django sees it, and writes that answer as an HTML page. `handle_error` is the one place it
does so; these workers keep gunicorn's status codes and its access-log entry, and write the
body every other error of the API has: RFC 9457 problem details with a `code`.

Their log line names the error's kind only, not its text: gunicorn's text quotes the request
line or header it refused, and a request line carries the query string (a patient search).
"""

from __future__ import annotations

import json
import ssl
from datetime import UTC, datetime
from typing import Any

from gunicorn import util
from gunicorn.http import errors
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

PROBLEM_TYPE_BASE = "https://skinpen-clinic.example/problems/"

# (status, reason, code) by what gunicorn raised; any other ParseException is a 400.
_ANSWERS: list[tuple[type[BaseException], int, str, str]] = [
    (errors.InvalidResponseHeader, 500, "Internal Server Error", "server_error"),
    (errors.InvalidResponseHeaderName, 500, "Internal Server Error", "server_error"),
    (errors.ConfigurationProblem, 500, "Internal Server Error", "server_error"),
    (errors.LimitRequestLine, 414, "URI Too Long", "uri_too_long"),
    (errors.LimitRequestHeaders, 431, "Request Header Fields Too Large", "headers_too_large"),
    (errors.ForbiddenProxyRequest, 403, "Forbidden", "permission_denied"),
    (ssl.SSLError, 403, "Forbidden", "permission_denied"),
    (errors.UnsupportedTransferCoding, 501, "Not Implemented", "not_implemented"),
    (errors.ExpectationFailed, 417, "Expectation Failed", "expectation_failed"),
    (errors.ParseException, 400, "Bad Request", "invalid"),
]
DETAILS = {
    414: "The request line is too long.",
    431: "The request's headers are too many or too large.",
    400: "The request could not be read as HTTP.",
}


def answer_for(exc: BaseException) -> tuple[int, str, str]:
    for kind, status, reason, code in _ANSWERS:
        if isinstance(exc, kind):
            return status, reason, code
    return 500, "Internal Server Error", "server_error"


def problem_response(status: int, reason: str, code: str) -> bytes:
    body = json.dumps(
        {
            "type": PROBLEM_TYPE_BASE + code,
            "title": reason,
            "status": status,
            "detail": DETAILS.get(status, reason),
            "code": code,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/problem+json\r\n"
        "Cache-Control: no-store\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class ProblemDetailsErrors:
    """Mixed into a gunicorn worker class: its `handle_error`, with a problem+json body."""

    log: Any
    cfg: Any

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        started = datetime.now(UTC)
        addr = addr or ("", -1)  # a unix socket
        status, reason, code = answer_for(exc)
        if status < 500:
            self.log.warning(
                "Refused a request from ip=%s: %s %s", addr[0], status, type(exc).__name__
            )
        else:
            self.log.exception("Error handling a request (%s)", type(exc).__name__)
        if req is None and isinstance(exc, (errors.InvalidHeader, errors.InvalidHeaderName)):
            req = getattr(exc, "req", None)  # the request whose header it was, as gunicorn does
        if req is not None:
            try:
                environ = default_environ(req, client, self.cfg)
                environ["REMOTE_ADDR"] = addr[0]
                environ["REMOTE_PORT"] = str(addr[1])
                response = Response(req, client, self.cfg)
                response.status = f"{status} {reason}"
                response.response_length = 0
                self.log.access(response, req, environ, datetime.now(UTC) - started)
            except Exception:  # the answer matters more than its log line
                self.log.debug("Failed to log the refused request.")
        try:
            util.write_nonblock(client, problem_response(status, reason, code))
        except Exception:
            self.log.debug("Failed to send error message.")


class ProblemSyncWorker(ProblemDetailsErrors, SyncWorker):
    """gunicorn's default (sync) worker."""


class ProblemThreadWorker(ProblemDetailsErrors, ThreadWorker):
    """gunicorn's gthread worker (`--threads N`)."""
