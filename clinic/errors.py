"""Domain errors raised by services, each with the contract's machine-readable code.

Services raise these; the API's exception handler turns them into problem details. Named
database constraints are mapped to the same errors here, so a race that only PostgreSQL
catches answers exactly like the check a service made first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

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

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        # RFC 9110: a 401 names the scheme that would work.
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"}, **extra)


class SecondFactorFailed(AuthenticationFailed):
    """The password was right; the TOTP code is missing or wrong (or, for the back office, the
    user has no confirmed device). `factor` says which: otp_required, otp_invalid,
    otp_not_enrolled."""

    def __init__(self, detail: str, *, factor: str) -> None:
        super().__init__(detail, otp_required=True)
        self.factor = factor


class Throttled(DomainError):
    status = 429
    code = "throttled"
    title = "Too many requests"
    default_detail = "Too many attempts. Try again later."


class Unprocessable(DomainError):
    status = 422
    title = "Unprocessable request"


ConstraintErrorFactory = Callable[[], DomainError]
_F = TypeVar("_F", bound=ConstraintErrorFactory)
_constraint_errors: dict[str, ConstraintErrorFactory] = {}


def register_constraint_error(constraint_name: str, factory: _F, *other_names: str) -> _F:
    """Declare which domain error a named database constraint (or several) stands for.

    Returns the factory: the service's own pre-check raises it too, so the check and a race
    only PostgreSQL catches answer with the very same error."""
    for name in (constraint_name, *other_names):
        _constraint_errors[name] = factory
    return factory


def invalid_field(field: str, message: str) -> Callable[[], InvalidInput]:
    """A factory of the 400 `invalid` answer naming one field."""
    return lambda: InvalidInput({field: [message]})


def constraint_name(exc: IntegrityError) -> str | None:
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None)


def error_for_integrity_error(exc: IntegrityError) -> DomainError | None:
    name = constraint_name(exc)
    factory = _constraint_errors.get(name) if name else None
    return factory() if factory else None


# --- The clinic app's constraints ---------------------------------------------------------------

room_name_taken = register_constraint_error(
    "clinic_room_name_unique", invalid_field("name", "A room with this name already exists.")
)
handpiece_serial_taken = register_constraint_error(
    "clinic_handpiece_serial_unique",
    invalid_field("serial_number", "A handpiece with this serial number exists."),
)
username_taken = register_constraint_error(
    "clinic_user_username_ci_unique",
    invalid_field("username", "This username is taken."),
    "clinic_user_username_key",
)
