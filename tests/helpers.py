"""Assertions the whole suite shares: problem documents, JSON bodies, ids and instants.

One `assert_problem`, strict: the body has exactly the contract's members (type, title, status,
detail, code), the extension members its code always carries (`CODE_MEMBERS`: `reasons` on
`patient_not_eligible`, ...) and the ones the caller names, nothing else. Named members are
compared by value; `errors` (present on field validation only) is named, `errors=ANY` where
its presence is the point.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

PROBLEM = "application/problem+json"
PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail", "code"})
# Extension members a code always carries (api-contract.md "Errors" and the v1.1 additions).
CODE_MEMBERS: dict[str, frozenset[str]] = {
    "patient_not_eligible": frozenset({"reasons"}),
    "consent_required": frozenset({"consent_forms"}),
    "warnings_not_acknowledged": frozenset({"warnings"}),
    "sessions_conflict": frozenset({"sessions"}),
    "server_error": frozenset({"request_id"}),
}


def assert_problem(response, status: int, code: str, **members) -> dict:
    """An RFC 9457 problem document: this status and code, exactly the contract's members, the
    code's own (`CODE_MEMBERS`) and the extension members given (by value), a type naming the
    code, a title and a detail."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM, response["Content-Type"]
    body = response.json()
    assert set(body) == PROBLEM_MEMBERS | CODE_MEMBERS.get(code, frozenset()) | set(members), body
    assert (body["status"], body["code"]) == (status, code), body
    assert isinstance(body["type"], str) and body["type"].endswith("/" + code), body["type"]
    for member in ("title", "detail"):
        assert isinstance(body[member], str) and body[member], (member, body)
    for name, value in members.items():
        assert body[name] == value, (name, body[name])
    return body


def assert_ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    return response.json()


def every_page(client, url: str, params: dict[str, Any]) -> list[dict]:
    """Each page of a paginated list (`?page=1`, 2, ... until `next` is null), as answered."""
    answers: list[dict] = []
    while True:
        answers.append(assert_ok(client.get(url, {**params, "page": len(answers) + 1})))
        if answers[-1]["next"] is None:
            return answers


def instant(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    assert moment.utcoffset() is not None, f"{value} has no offset"
    return moment


def assert_uuid(value) -> None:
    assert isinstance(value, str), value
    uuid.UUID(value)


def url_patterns(
    patterns: list[Any] | None = None, prefix: str = ""
) -> Iterator[tuple[str, Callable[..., Any]]]:
    """Every route Django knows, as (the pattern's full text, its view): what the endpoint
    tests derive their lists from, so a new endpoint cannot be left out."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from url_patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback
