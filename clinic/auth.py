"""Login hardening shared by the API's token login and the back office's login.

- `client_address`: the client's address, read from X-Forwarded-For behind the configured
  number of trusted proxies (`TRUSTED_PROXY_COUNT`), else REMOTE_ADDR.
- `admit_attempt`: one PostgreSQL `INSERT ... ON CONFLICT ... RETURNING` per attempt, taken
  before the password is checked, decides whether the attempt is let through: the first
  `limit` attempts on a key are, then each further one only after a delay that doubles with
  every failure (`LOGIN_DELAY_BASE_SECONDS`, at most `LOGIN_DELAY_MAX_SECONDS`).
- Device tokens (OWASP "device cookies"): a signed token bound to a username, issued after a
  successful login. Attempts that present a valid one are counted on their own key, so a
  stranger's failures on the username never delay the person who logged in from there before.
- TOTP second factor (django-otp): the user's confirmed device, locked while a code is checked
  so a code cannot be used twice by concurrent logins.

Auditing and the decision itself live in `clinic.services.check_login`.
"""

from __future__ import annotations

import ipaddress
import math
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import connection
from django.http import HttpRequest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinic.models import User

DEVICE_TOKEN_SALT = "clinic.auth.device-token"  # noqa: S105 (a signing namespace)
DEVICE_TOKEN_HEADER = "X-Device-Token"  # noqa: S105 (a header name)
DEVICE_COOKIE = "clinic_device"


# --- Client address ------------------------------------------------------------------------------


def client_address(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or, behind `TRUSTED_PROXY_COUNT` proxies, the address
    the outermost trusted proxy saw (X-Forwarded-For read from the right, so entries a client
    writes itself on the left are never taken)."""
    remote = str(request.META.get("REMOTE_ADDR", ""))
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted <= 0:
        return remote
    hops = [
        hop.strip()
        for hop in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")
        if hop.strip()
    ]
    if not hops:
        return remote
    # Fewer hops than proxies: the request skipped a proxy; the leftmost is the best we have.
    candidate = hops[-trusted] if len(hops) >= trusted else hops[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


def address_key(address: str) -> str:
    """IPv6 clients are counted per /64 (one subscriber's network), IPv4 per address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"address:{address}"[:300]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"address:{ip.ipv4_mapped}"
        return f"address:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"address:{ip}"


def username_key(username: str) -> str:
    # Clipped to LoginFailureCounter.key: lower() can lengthen a name (e.g. "İ" becomes two).
    return f"user:{username.strip().lower()}"[:300]


# --- Counting attempts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Admission:
    admitted: bool
    retry_after: int  # seconds until the next attempt is let through (0 when admitted)


_ADMIT_SQL = """
INSERT INTO clinic_loginfailurecounter AS c
    (key, failures, last_failure_at, next_attempt_at, last_refused)
VALUES (
    %(key)s, 1, %(now)s,
    CASE WHEN 1 >= %(limit)s THEN %(now)s + make_interval(secs => %(base)s) END,
    false
)
ON CONFLICT (key) DO UPDATE SET
    failures = CASE
        WHEN {forgotten} THEN 1
        WHEN {refused} THEN c.failures
        ELSE c.failures + 1 END,
    last_failure_at = CASE WHEN {refused} THEN c.last_failure_at ELSE %(now)s END,
    next_attempt_at = CASE
        WHEN {refused} THEN c.next_attempt_at
        WHEN {admitted_count} >= %(limit)s THEN %(now)s + make_interval(secs => LEAST(
            %(base)s * power(2::float8, LEAST({admitted_count} - %(limit)s, 40)), %(max)s))
        WHEN {forgotten} THEN NULL
        ELSE c.next_attempt_at END,
    last_refused = {refused}
RETURNING last_refused, next_attempt_at
"""
# Every expression in SET reads the row as it was before this attempt.
_FORGOTTEN = (
    "(GREATEST(c.last_failure_at, COALESCE(c.next_attempt_at, c.last_failure_at))"
    " < %(now)s - %(window)s)"
)
_REFUSED = f"(NOT {_FORGOTTEN} AND COALESCE(c.next_attempt_at > %(now)s, false))"
_ADMITTED_COUNT = f"(CASE WHEN {_FORGOTTEN} THEN 1 ELSE c.failures + 1 END)"
ADMIT_SQL = _ADMIT_SQL.format(
    forgotten=_FORGOTTEN, refused=_REFUSED, admitted_count=_ADMITTED_COUNT
)


def admit_attempt(key: str, limit: int) -> Admission:
    """Count one attempt against `key`, or refuse it while the key's delay runs.

    One statement, so PostgreSQL serialises concurrent attempts on the row: of twenty parallel
    attempts with a limit of five, exactly five are let through. A refused attempt is not
    counted (it tested no password) and does not lengthen the delay.
    """
    now = timezone.now()
    params: dict[str, Any] = {
        "key": key,
        "now": now,
        "limit": limit,
        "window": timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS),
        "base": float(settings.LOGIN_DELAY_BASE_SECONDS),
        "max": float(settings.LOGIN_DELAY_MAX_SECONDS),
    }
    with connection.cursor() as cursor:
        cursor.execute(ADMIT_SQL, params)
        refused, next_attempt_at = cursor.fetchone()
    if not refused:
        return Admission(True, 0)
    return Admission(False, max(1, math.ceil((next_attempt_at - now).total_seconds())))


def give_back(key: str) -> None:
    """Uncount an attempt that was let through but tested no password (or succeeded)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE clinic_loginfailurecounter SET failures = GREATEST(failures - 1, 0) "
            "WHERE key = %s",
            [key],
        )


def forget(key: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM clinic_loginfailurecounter WHERE key = %s", [key])


def delete_stale_counters() -> int:
    window = timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM clinic_loginfailurecounter "
            "WHERE GREATEST(last_failure_at, COALESCE(next_attempt_at, last_failure_at)) < %s",
            [timezone.now() - window],
        )
        return cursor.rowcount


# --- Device tokens -------------------------------------------------------------------------------


def issue_device_token(username: str) -> str:
    """A signed, timestamped token naming the username (as counted) and a random device id."""
    return signing.dumps(
        {"u": username_key(username), "d": secrets.token_urlsafe(16)}, salt=DEVICE_TOKEN_SALT
    )


def device_key(token: str | None, username: str) -> str | None:
    """The counter key of a valid device token for this username, else None (then the attempt
    counts on the shared username key, like any stranger's)."""
    if not token or len(token) > 500:
        return None
    try:
        payload = signing.loads(
            token,
            salt=DEVICE_TOKEN_SALT,
            max_age=timedelta(days=settings.DEVICE_TOKEN_MAX_AGE_DAYS),
        )
    except signing.BadSignature:
        return None
    if not isinstance(payload, dict) or payload.get("u") != username_key(username):
        return None
    return f"device:{payload.get('d')}"[:300]


# --- TOTP ----------------------------------------------------------------------------------------


def confirmed_totp_device(user: User, *, lock: bool = False) -> TOTPDevice | None:
    devices = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id")
    if lock:
        devices = devices.select_for_update()
    return devices.first()


def has_confirmed_totp_device(user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()
