"""Every write of the clinic app: clinics, staff, rooms, handpieces, logins.

Each service owns its transaction, validates the rules, and writes its audit event.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from knox.models import AuthToken

from clinic import audit
from clinic.errors import (
    AuthenticationFailed,
    InvalidInput,
    Throttled,
    handpiece_serial_taken,
    room_name_taken,
    username_taken,
)
from clinic.models import Clinic, Handpiece, IdempotencyKey, Room, User
from clinic.rules import CLINIC_SETTING_RANGES, AuditOutcome, Role, clinic_setting_errors

CLINIC_SETTINGS_FIELDS = ("name", "timezone", *CLINIC_SETTING_RANGES)


def _validate_clinic_settings(clinic: Clinic) -> None:
    try:
        clinic.full_clean(validate_constraints=False)
    except ValidationError as exc:
        raise InvalidInput({k: [str(m) for m in v] for k, v in exc.message_dict.items()}) from exc
    errors = clinic_setting_errors({name: getattr(clinic, name) for name in CLINIC_SETTING_RANGES})
    if errors:
        raise InvalidInput(errors)


@transaction.atomic
def create_clinic(
    *, name: str, timezone_name: str, admin_username: str, admin_password: str, via: str
) -> tuple[Clinic, User]:
    clinic = Clinic(name=name, timezone=timezone_name)
    _validate_clinic_settings(clinic)
    clinic.save(force_insert=True)
    admin = _create_user(
        clinic=clinic,
        username=admin_username,
        password=admin_password,
        full_name="",
        role=Role.ADMIN,
    )
    audit.record(
        actor=None,
        actor_label=via,
        clinic_id=clinic.id,
        action="clinic.create",
        object_type="clinic",
        object_id=clinic.id,
    )
    audit.record(
        actor=None,
        actor_label=via,
        clinic_id=clinic.id,
        action="staff.create",
        object_type="staff",
        object_id=admin.id,
        detail={"role": admin.role},
    )
    for listener in _clinic_listeners:
        listener(clinic, admin)
    return clinic, admin


ClinicListener = Callable[[Clinic, User], None]
_clinic_listeners: list[ClinicListener] = []


def on_clinic_created(listener: ClinicListener) -> None:
    """Let an app above seed a new clinic (e.g. its default aftercare template) in the same
    transaction, without clinic importing it. Registered once, in that app's ready()."""
    if listener not in _clinic_listeners:
        _clinic_listeners.append(listener)


@transaction.atomic
def update_clinic(*, actor: User, clinic: Clinic, changes: dict[str, Any]) -> Clinic:
    clinic = Clinic.objects.select_for_update().get(pk=clinic.pk)
    unknown = set(changes) - set(CLINIC_SETTINGS_FIELDS)
    if unknown:
        raise InvalidInput({name: ["This field cannot be changed."] for name in sorted(unknown)})
    before = {name: getattr(clinic, name) for name in changes}
    for name, value in changes.items():
        setattr(clinic, name, value)
    _validate_clinic_settings(clinic)
    clinic.save(update_fields=list(changes))
    audit.record(
        actor=actor,
        action="clinic.update",
        object_type="clinic",
        object_id=clinic.id,
        detail={"fields": sorted(changes)},
    )
    changed = frozenset(name for name in changes if getattr(clinic, name) != before[name])
    if changed:
        for settings_listener in _settings_listeners:
            settings_listener(clinic, changed)
    return clinic


SettingsListener = Callable[[Clinic, frozenset[str]], None]
_settings_listeners: list[SettingsListener] = []


def on_clinic_settings_changed(listener: SettingsListener) -> None:
    """Let an app above act on changed settings (e.g. scheduling refreshes session flags when
    the time zone moves every session's local date) in the same transaction. Registered once,
    in that app's ready(); called with the clinic and the names of the fields that changed."""
    if listener not in _settings_listeners:
        _settings_listeners.append(listener)


def _create_user(
    *, clinic: Clinic, username: str, password: str, full_name: str, role: str
) -> User:
    # Clinic admins may use the back office (Django admin), scoped to their clinic.
    user = User(
        clinic=clinic,
        username=username,
        full_name=full_name,
        role=role,
        is_staff=role == Role.ADMIN,
    )
    errors: dict[str, list[str]] = {}
    if User.objects.filter(username__iexact=username).exists():
        errors.update(username_taken().extra["errors"])
    try:
        validate_password(password, user)
    except ValidationError as exc:
        errors["password"] = list(exc.messages)
    try:
        user.full_clean(exclude=["password"], validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            errors.setdefault(field, []).extend(messages)
    if errors:
        raise InvalidInput(errors)
    user.set_password(password)
    user.save(force_insert=True)
    return user


@transaction.atomic
def create_staff(*, actor: User, username: str, password: str, full_name: str, role: str) -> User:
    user = _create_user(
        clinic=Clinic.objects.get(pk=actor.clinic_uuid),
        username=username,
        password=password,
        full_name=full_name,
        role=role,
    )
    audit.record(
        actor=actor,
        action="staff.create",
        object_type="staff",
        object_id=user.id,
        detail={"role": role},
    )
    return user


def check_room_name(*, clinic_id: UUID, name: str, room_id: UUID | None = None) -> None:
    """The room-name rule (unique per clinic, whatever the case), for services and the admin."""
    rooms = Room.objects.filter(clinic_id=clinic_id, name__iexact=name)
    if rooms.exclude(pk=room_id).exists() if room_id else rooms.exists():
        raise room_name_taken()


def check_handpiece_serial(
    *, clinic_id: UUID, serial_number: str, handpiece_id: UUID | None = None
) -> None:
    handpieces = Handpiece.objects.filter(clinic_id=clinic_id, serial_number=serial_number)
    if handpieces.exclude(pk=handpiece_id).exists() if handpiece_id else handpieces.exists():
        raise handpiece_serial_taken()


@transaction.atomic
def create_room(*, actor: User, name: str, clinic_id: UUID | None = None, via: str = "") -> Room:
    """`clinic_id` only for platform superusers (the admin), who belong to no clinic."""
    clinic_id = clinic_id or actor.clinic_uuid
    check_room_name(clinic_id=clinic_id, name=name)
    return _created(actor, Room.objects.create(clinic_id=clinic_id, name=name), via)


@transaction.atomic
def update_room(*, actor: User, room: Room, changes: dict[str, Any], via: str = "") -> Room:
    room = Room.objects.select_for_update().get(pk=room.pk)
    if "name" in changes:
        check_room_name(clinic_id=room.clinic_id, name=changes["name"], room_id=room.pk)
    return _updated(actor, room, changes, ("name", "is_active"), via)


@transaction.atomic
def create_handpiece(
    *, actor: User, serial_number: str, clinic_id: UUID | None = None, via: str = ""
) -> Handpiece:
    clinic_id = clinic_id or actor.clinic_uuid
    check_handpiece_serial(clinic_id=clinic_id, serial_number=serial_number)
    handpiece = Handpiece.objects.create(clinic_id=clinic_id, serial_number=serial_number)
    return _created(actor, handpiece, via)


@transaction.atomic
def update_handpiece(
    *, actor: User, handpiece: Handpiece, changes: dict[str, Any], via: str = ""
) -> Handpiece:
    handpiece = Handpiece.objects.select_for_update().get(pk=handpiece.pk)
    if "serial_number" in changes:
        check_handpiece_serial(
            clinic_id=handpiece.clinic_id,
            serial_number=changes["serial_number"],
            handpiece_id=handpiece.pk,
        )
    return _updated(actor, handpiece, changes, ("serial_number", "is_active"), via)


_Equipment = TypeVar("_Equipment", Room, Handpiece)


def _created(actor: User, obj: _Equipment, via: str) -> _Equipment:
    name = obj._meta.model_name
    detail = {"via": via} if via else None
    audit.record(
        actor=actor,
        clinic_id=obj.clinic_id,
        action=f"{name}.create",
        object_type=str(name),
        object_id=obj.pk,
        detail=detail,
    )
    return obj


def _updated(
    actor: User, obj: _Equipment, changes: dict[str, Any], fields: tuple[str, ...], via: str
) -> _Equipment:
    for field in fields:
        if field in changes:
            setattr(obj, field, changes[field])
    obj.save()
    name = obj._meta.model_name
    audit.record(
        actor=actor,
        clinic_id=obj.clinic_id,
        action=f"{name}.update",
        object_type=str(name),
        object_id=obj.pk,
        detail={"fields": sorted(changes), **({"via": via} if via else {})},
    )
    return obj


# --- Logins ------------------------------------------------------------------------------------


def _count_attempt(key: str) -> int:
    """Count one attempt against `key` and return the count in the current window.

    One statement, so PostgreSQL serialises concurrent attempts on the row: twenty parallel
    attempts get twenty distinct counts and no more than the limit get through.
    """
    params: dict[str, Any] = {
        "key": key,
        "window": timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS),
        "now": timezone.now(),
    }
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO clinic_loginfailurecounter AS c (key, failures, window_started_at)
            VALUES (%(key)s, 1, %(now)s)
            ON CONFLICT (key) DO UPDATE SET
                failures = CASE WHEN c.window_started_at < %(now)s - %(window)s
                                THEN 1 ELSE c.failures + 1 END,
                window_started_at = CASE WHEN c.window_started_at < %(now)s - %(window)s
                                         THEN %(now)s ELSE c.window_started_at END
            RETURNING failures
            """,
            params,
        )
        (failures,) = cursor.fetchone()
    return int(failures)


def _forget_attempt(key: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE clinic_loginfailurecounter SET failures = GREATEST(failures - 1, 0) "
            "WHERE key = %s",
            [key],
        )


def login(*, username: str, password: str, client_address: str) -> tuple[str, datetime]:
    """Check a password and issue a token, refusing (429) once too many attempts failed.

    An attempt is counted before the password is checked, and given back if it succeeds, so
    concurrent guesses cannot all slip in before the first failure is recorded.
    """
    # Clipped to LoginFailureCounter.key: lower() can lengthen a name (e.g. "İ" becomes two).
    user_key = f"user:{username.strip().lower()}"[:300]
    address_key = f"address:{client_address}"[:300]
    over_limit = _count_attempt(user_key) > settings.LOGIN_FAILURE_LIMIT
    over_limit |= _count_attempt(address_key) > settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS
    # Usernames are unique whatever their case, so a login names its user whatever the case.
    known = (
        User.objects.filter(username__iexact=username).only("id", "username", "clinic_id").first()
    )

    def failed(outcome: str) -> None:
        audit.record(
            actor=None,
            actor_label=username[:150],
            clinic_id=known.clinic_id if known else None,
            action="auth.login",
            object_type="staff",
            object_id=known.id if known else "",
            outcome=outcome,
        )

    if over_limit:
        failed(AuditOutcome.DENIED)
        raise Throttled(
            "Too many failed logins. Try again later.",
            headers={"Retry-After": str(settings.LOGIN_FAILURE_WINDOW_SECONDS)},
        )
    user = authenticate(username=known.username if known else username, password=password)
    if not isinstance(user, User) or user.clinic_id is None or not user.role:
        failed(AuditOutcome.FAILED)
        raise AuthenticationFailed()

    with transaction.atomic():
        _forget_attempt(address_key)
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM clinic_loginfailurecounter WHERE key = %s", [user_key])
        instance, token = AuthToken.objects.create(user=user)
        User.objects.filter(pk=user.pk).update(last_login=instance.created)
        audit.record(actor=user, action="auth.login", object_type="staff", object_id=user.id)
    return token, instance.expiry


@transaction.atomic
def logout(*, user: User, token: AuthToken) -> None:
    token.delete()
    audit.record(actor=user, action="auth.logout", object_type="staff", object_id=user.id)


def delete_stale_login_counters() -> int:
    window = timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM clinic_loginfailurecounter WHERE window_started_at < %s",
            [timezone.now() - window],
        )
        return cursor.rowcount


def purge_expired_idempotency_keys() -> int:
    """Stored first responses are kept IDEMPOTENCY_KEY_TTL_HOURS (the contract: 24 h or more)."""
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted
