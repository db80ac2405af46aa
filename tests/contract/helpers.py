"""Assertions the contract suites share: problem documents, JSON bodies, ids and instants."""

from __future__ import annotations

import uuid
from datetime import datetime

PROBLEM = "application/problem+json"
PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code"}


def assert_problem(response, status: int, code: str) -> dict:
    """An RFC 9457 problem document with the contract's members, status and code."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM, response["Content-Type"]
    body = response.json()
    assert set(body) >= PROBLEM_MEMBERS, body
    assert (body["status"], body["code"]) == (status, code), body
    return body


def assert_ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    return response.json()


def instant(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    assert moment.utcoffset() is not None, f"{value} has no offset"
    return moment


def assert_uuid(value) -> None:
    assert isinstance(value, str), value
    uuid.UUID(value)
