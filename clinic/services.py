"""Every write of the clinic app: clinics, staff, rooms, handpieces, logins.

Each service owns its transaction, validates the rules, and writes its audit event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from knox.models import AuthToken
from knox.settings import knox_settings

from clinic import audit, auth
from clinic.errors import (
    AuthenticationFailed,
    InvalidInput,
    SecondFactorFailed,
    Throttled,
    handpiece_serial_taken,
    room_name_taken,
    username_taken,
)
from clinic.models import Clinic, Handpiece, IdempotencyKey, Room, User
from clinic.rules import CLINIC_SETTING_RANGES, AuditOutcome, Role, clinic_setting_errors

CLINIC_SETTINGS_FIELDS = ("name", "timezone", *CLINIC_SETTING_RANGES, "day_of_attestation_required")


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
    *, clinic: Clinic, username: str, password: str, full_name: str, role: str, email: str = ""
) -> User:
    # Clinic admins may use the back office (Django admin), scoped to their clinic.
    user = User(
        clinic=clinic,
        username=username,
        full_name=full_name,
        email=email,
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
def create_staff(
    *, actor: User, username: str, password: str, full_name: str, role: str, email: str = ""
) -> User:
    """A staff member of the actor's clinic. `email` (optional) is where staff messages go:
    an admin's recall-watcher alerts."""
    user = _create_user(
        clinic=Clinic.objects.get(pk=actor.clinic_uuid),
        username=username,
        password=password,
        full_name=full_name,
        role=role,
        email=email,
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
# One lockout for the API's token login and the back office's login (clinic/admin_site.py):
# both go through check_login. See clinic/auth.py for the counting and the device tokens.


@dataclass(frozen=True)
class CheckedLogin:
    user: User
    device_token: str  # a fresh device token for this username (OWASP device cookie)
    otp_device: TOTPDevice | None  # the device whose code was checked, if any


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime  # the absolute end of the token's life (TOKEN_TTL_HOURS)
    device_token: str


def check_login(
    *,
    username: str,
    password: str,
    client_address: str,
    otp: str | None = None,
    device_token: str | None = None,
    back_office: bool = False,
) -> CheckedLogin:
    """Check a login, refusing (429) while the account's or the address's delay runs.

    Each attempt is counted before the password is checked, by one PostgreSQL statement per
    key, so concurrent guesses cannot slip in before the first failure is recorded. An attempt
    presenting a valid device token for the username is counted on that device alone (not on
    the username, not on the address): strangers' failures do not delay its holder. Users with a
    confirmed TOTP device must send the current code; the back office requires one.
    Every refusal and failure is audited here; successes by the caller (token or session).
    """
    via: dict[str, Any] = {"via": "admin"} if back_office else {}
    account_key = auth.device_key(device_token, username)
    address_key: str | None = None
    if account_key is not None:
        admission = auth.admit_attempt(account_key, settings.LOGIN_FAILURE_LIMIT)
    else:
        address_key = auth.address_key(client_address)
        account_key = auth.username_key(username)
        admission = auth.admit_attempt(address_key, settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS)
        if admission.admitted:
            admission = auth.admit_attempt(account_key, settings.LOGIN_FAILURE_LIMIT)
            if not admission.admitted:
                auth.give_back(address_key)  # no password was tested from there
    # Usernames are unique whatever their case, so a login names its user whatever the case.
    known = (
        User.objects.filter(username__iexact=username).only("id", "username", "clinic_id").first()
    )

    def failed(outcome: str, **detail: Any) -> None:
        audit.record(
            actor=None,
            actor_label=username[:150],
            clinic_id=known.clinic_id if known else None,
            action="auth.login",
            object_type="staff",
            object_id=known.id if known else "",
            outcome=outcome,
            detail={**via, **detail} or None,
        )

    if not admission.admitted:
        failed(AuditOutcome.DENIED)
        raise Throttled(
            "Too many failed logins. Try again later.",
            headers={"Retry-After": str(admission.retry_after)},
        )
    user = authenticate(username=known.username if known else username, password=password)
    if not isinstance(user, User) or not user.is_active:
        allowed = False
    elif back_office:
        allowed = user.is_staff
    else:
        allowed = user.clinic_id is not None and bool(user.role)
    if not allowed or not isinstance(user, User):
        failed(AuditOutcome.FAILED)
        raise AuthenticationFailed()

    # The device row is locked while its code is checked: a code is good once, even when two
    # logins send it at the same moment (verify_token records the step it accepted).
    with transaction.atomic():
        otp_device = auth.confirmed_totp_device(user, lock=True)
        if otp_device is None:
            otp_problem = "otp_not_enrolled" if back_office else ""
        elif not otp:
            otp_problem = "otp_required"
        elif not (otp.isdigit() and otp_device.verify_token(otp)):
            otp_problem = "otp_invalid"
        else:
            otp_problem = ""
    if otp_problem:
        failed(AuditOutcome.FAILED, factor=otp_problem)
        raise SecondFactorFailed(OTP_PROBLEMS[otp_problem], factor=otp_problem)

    if address_key is not None:
        auth.give_back(address_key)
    auth.forget(account_key)
    return CheckedLogin(
        user=user, device_token=auth.issue_device_token(username), otp_device=otp_device
    )


OTP_PROBLEMS = {
    "otp_required": "This account uses two-factor authentication: send `otp`, the current "
    "one-time code.",
    "otp_invalid": "Invalid one-time code.",
    "otp_not_enrolled": "The back office requires two-factor authentication: enrol a TOTP "
    "device first (manage.py enroll_totp).",
}


def login(
    *,
    username: str,
    password: str,
    client_address: str,
    otp: str | None = None,
    device_token: str | None = None,
) -> IssuedToken:
    """The API's login: check it (check_login) and issue a bearer token.

    The token stops working TOKEN_IDLE_MINUTES after its last use (knox's `expiry` slides, see
    clinic/authentication.py) and at the latest TOKEN_TTL_HOURS after issue (`expires_at`).
    """
    checked = check_login(
        username=username,
        password=password,
        client_address=client_address,
        otp=otp,
        device_token=device_token,
    )
    user = checked.user
    lifetime = knox_settings.TOKEN_TTL
    idle = timedelta(minutes=settings.TOKEN_IDLE_MINUTES)
    with transaction.atomic():
        instance, token = AuthToken.objects.create(
            user=user, expiry=min(idle, lifetime) if settings.TOKEN_IDLE_MINUTES else lifetime
        )
        User.objects.filter(pk=user.pk).update(last_login=instance.created)
        audit.record(actor=user, action="auth.login", object_type="staff", object_id=user.id)
    return IssuedToken(
        token=token, expires_at=instance.created + lifetime, device_token=checked.device_token
    )


@transaction.atomic
def logout(*, user: User, token: AuthToken) -> None:
    token.delete()
    audit.record(actor=user, action="auth.logout", object_type="staff", object_id=user.id)


def delete_stale_login_counters() -> int:
    return auth.delete_stale_counters()


def delete_expired_tokens() -> int:
    """Expired tokens are refused when presented; this removes the rest (the token check does
    not load a user's other tokens to clean them up, as knox's own does)."""
    deleted, _ = AuthToken.objects.filter(expiry__lt=timezone.now()).delete()
    return deleted


def purge_expired_idempotency_keys() -> int:
    """Stored first responses are kept IDEMPOTENCY_KEY_TTL_HOURS (the contract: 24 h or more)."""
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted


# --- TOTP enrolment (manage.py enroll_totp) ------------------------------------------------------


def _staff_by_username(username: str) -> User:
    user = User.objects.filter(username__iexact=username).first()
    if user is None:
        raise InvalidInput({"username": ["No such user."]})
    return user


def _audit_totp(user: User, action: str, via: str) -> None:
    """TOTP enrolment is run from the command line, so the actor is named, not a signed-in user."""
    audit.record(
        actor=None,
        actor_label=via,
        clinic_id=user.clinic_id,
        action=action,
        object_type="staff",
        object_id=user.id,
    )


@transaction.atomic
def start_totp_enrolment(*, username: str, via: str) -> TOTPDevice:
    """A new, unconfirmed TOTP device for the user (replacing any unconfirmed one). A confirmed
    device keeps working until the new one is confirmed."""
    user = _staff_by_username(username)
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
    _audit_totp(user, "staff.totp_enrolment_start", via)
    return device


@transaction.atomic
def confirm_totp_enrolment(*, username: str, code: str, via: str) -> TOTPDevice:
    """Confirm the pending device with a code from the authenticator app; it replaces the
    user's earlier device."""
    user = _staff_by_username(username)
    device = (
        TOTPDevice.objects.select_for_update()
        .filter(user=user, confirmed=False)
        .order_by("-id")
        .first()
    )
    if device is None:
        raise InvalidInput({"username": ["No enrolment is pending: start one first."]})
    if not (code.isdigit() and device.verify_token(code)):
        raise InvalidInput({"code": ["Invalid one-time code."]})
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    _audit_totp(user, "staff.totp_enrolment_confirm", via)
    return device


@transaction.atomic
def remove_totp(*, username: str, via: str) -> int:
    user = _staff_by_username(username)
    deleted, _ = TOTPDevice.objects.filter(user=user).delete()
    _audit_totp(user, "staff.totp_remove", via)
    return deleted
