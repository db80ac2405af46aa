"""Roles, declared per view. Anything a view does not grant is refused (403)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from clinic.models import Role

ADMIN = frozenset({Role.ADMIN})
ALL_ROLES = frozenset(Role.values)
CLINICAL_STAFF = frozenset({Role.ADMIN, Role.FRONT_DESK, Role.PROVIDER})
PROVIDERS = frozenset({Role.ADMIN, Role.PROVIDER})
AUDIT_READERS = frozenset({Role.ADMIN, Role.AUDITOR})


def allowed_roles(view: Any, request: Request) -> frozenset[str]:
    """The roles a view grants for this request.

    A view declares `read_roles` (safe methods) and `write_roles` (everything else), and may
    grant a viewset action its own set in `action_roles`.
    """
    action = getattr(view, "action", None)
    action_roles: dict[str, frozenset[str]] = getattr(view, "action_roles", {})
    if action in action_roles:
        return action_roles[action]
    if request.method in SAFE_METHODS:
        return getattr(view, "read_roles", ALL_ROLES)
    return getattr(view, "write_roles", ADMIN)


class HasRole(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.clinic_id and user.role):
            return False
        # Auditors read, never write, whatever a view declares.
        if user.role == Role.AUDITOR and request.method not in SAFE_METHODS:
            return False
        return user.role in allowed_roles(view, request)
