"""Domain errors raised by services, each with the contract's machine-readable code.

Services raise these; the API's exception handler turns them into problem details. Named
database constraints are mapped to the same errors here, so a race that only PostgreSQL
catches answers exactly like the check a service made first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import IntegrityError


class DomainError(Exception):
    status: int = 400
    code: str = "invalid"
    title: str = "Invalid request"
    default_detail: str = "The request is not valid."

    def __init__(
        self, detail: str | None = None, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        self.detail = detail or self.default_detail
        # Extension members of the problem body, e.g. `reasons` or `errors`.
        self.extra = extra
        self.headers = headers or {}
        super().__init__(self.detail)


class InvalidInput(DomainError):
    """A field value a service refuses (400 `invalid`); `errors` names the fields."""

    def __init__(self, errors: dict[str, list[str]], detail: str | None = None) -> None:
        super().__init__(detail or "Invalid input.", errors=errors)


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class InvalidState(Conflict):
    code = "invalid_state"
    default_detail = "The action does not fit the object's current status."


class AuthenticationFailed(DomainError):
    status = 401
    code = "authentication_failed"
    title = "Not authenticated"
    default_detail = "Invalid username or password."

    def __init__(self, detail: str | None = None) -> None:
        # RFC 9110: a 401 names the scheme that would work.
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Throttled(DomainError):
    status = 429
    code = "throttled"
    title = "Too many requests"
    default_detail = "Too many attempts. Try again later."


class Unprocessable(DomainError):
    status = 422
    title = "Unprocessable request"


ConstraintErrorFactory = Callable[[], DomainError]
_constraint_errors: dict[str, ConstraintErrorFactory] = {}


def register_constraint_error(constraint_name: str, factory: ConstraintErrorFactory) -> None:
    """Declare which domain error a named database constraint stands for."""
    _constraint_errors[constraint_name] = factory


def constraint_name(exc: IntegrityError) -> str | None:
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None)


def error_for_integrity_error(exc: IntegrityError) -> DomainError | None:
    name = constraint_name(exc)
    factory = _constraint_errors.get(name) if name else None
    return factory() if factory else None
