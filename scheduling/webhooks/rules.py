"""Webhook rules: event types, delivery statuses, the retry delay and the address check.

Pure functions of plain values (no ORM, no network): `guard` resolves names and asks
`address_refusal` about each address.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta

from django.db.models import TextChoices

URL_MAX_LENGTH = 2000
SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks prefix, not a secret)
SECRET_BYTES = 32
MESSAGE_ID_PREFIX = "msg_"
LAST_ERROR_MAX_LENGTH = 300


class WebhookEventType(TextChoices):
    SESSION_BOOKED = "session.booked", "Session booked"
    SESSION_RESCHEDULED = "session.rescheduled", "Session rescheduled"
    SESSION_CANCELLED = "session.cancelled", "Session cancelled"
    SESSION_CHECKED_IN = "session.checked_in", "Session checked in"
    SESSION_COMPLETED = "session.completed", "Session completed"
    SESSION_NO_SHOW = "session.no_show", "Session no-show"
    TREATMENT_RECORDED = "treatment.recorded", "Treatment recorded"
    TREATMENT_AMENDED = "treatment.amended", "Treatment amended"
    TIP_LOT_RECALLED = "tip_lot.recalled", "Tip lot recalled"
    SERIES_COMPLETED = "series.completed", "Series completed"


class WebhookDeliveryStatus(TextChoices):
    PENDING = "pending", "Pending"
    # Claimed by one worker, which is sending it now (or died doing so: reclaimed later).
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


# What the API shows: `sending` is a moment of `pending`.
PUBLIC_DELIVERY_STATUSES = [
    (WebhookDeliveryStatus.PENDING, "Pending"),
    (WebhookDeliveryStatus.DELIVERED, "Delivered"),
    (WebhookDeliveryStatus.FAILED, "Failed"),
]


def retry_delay(attempts: int, *, base_seconds: int, max_seconds: int) -> timedelta:
    """The wait after the `attempts`-th failed try: base, 2x base, 4x base... at most max."""
    seconds = base_seconds * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, max_seconds))


def delivered(status_code: int) -> bool:
    """Standard Webhooks: any 2xx is success; a redirect is not followed and counts as failure."""
    return 200 <= status_code < 300


def address_refusal(address: str) -> str | None:
    """Why a webhook must not connect to this IP address, or None when it may (a public one).

    Loopback, private (RFC 1918, unique local), link-local (cloud metadata at 169.254.169.254),
    shared (CGNAT), reserved, multicast and unspecified addresses are refused; an IPv4 address
    written as IPv6 (::ffff:10.0.0.1) is judged as the IPv4 address it is.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for refused, name in (
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_private, "a private address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_unspecified, "the unspecified address"),
        (not ip.is_global, "not a public address"),
    ):
        if refused:
            return f"{ip} is {name}"
    return None
