"""How a message leaves the building: email through Django's email backends, SMS through a small
backend interface of our own.

Email: EMAIL_BACKEND (console in development and for the run command, SMTP configured by the
environment, locmem in tests). SMS: SMS_BACKEND is the dotted path of an `SMSBackend` subclass,
built with SMS_BACKEND_OPTIONS as keyword arguments; a real provider's adapter is one small
class implementing `send` and, for replies, `verify_inbound` and `parse_inbound` (the built-in
protocol is the base class's; scheduling.twilio_sms is Twilio's).

Every message carries a `reference`, the notification's id, which never changes between
attempts: an adapter whose provider accepts an idempotency key or client reference should pass
it, so the provider itself can drop the one duplicate our outbox cannot rule out (see
scheduling.notifications.sender.send).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class Message:
    to: str
    subject: str
    body: str
    reference: str


class PermanentSendError(Exception):
    """The provider refused the message for good (a malformed address): retrying cannot help."""


# --- Email ------------------------------------------------------------------------------------


def send_email(message: Message) -> None:
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip("> ") or "localhost"
    email = EmailMessage(
        subject=message.subject,
        body=message.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[message.to],
        # The same Message-ID on every attempt lets a receiving system drop a repeat.
        headers={"Message-ID": f"<notification.{message.reference}@{domain}>"},
        connection=get_connection(fail_silently=False),
    )
    email.send(fail_silently=False)


# --- Inbound SMS (replies) --------------------------------------------------------------------


@dataclass(frozen=True)
class InboundRequest:
    """What a provider's inbound webhook sent, as the backend needs it (no Django request)."""

    url: str  # the absolute URL the provider called
    body: bytes
    headers: Mapping[str, str]  # case-insensitive (Django's request.headers)


@dataclass(frozen=True)
class InboundSMS:
    message_id: str  # the provider's id of the message: the same message twice has one effect
    sender: str  # the phone number it came from, as the provider writes it
    body: str


class InboundInvalid(Exception):
    """The request is signed but not a message (a field missing): 400 `invalid`."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("not an inbound message")
        self.errors = errors


INBOUND_SIGNATURE_HEADER = "X-Signature"
INBOUND_ID_MAX_LENGTH = 100
INBOUND_SENDER_MAX_LENGTH = 32
INBOUND_BODY_MAX_LENGTH = 1600  # ten concatenated SMS segments


def inbound_signature(body: bytes, secret: str) -> str:
    """The built-in protocol's X-Signature value: sha256=<hex HMAC-SHA256 of the raw body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- SMS --------------------------------------------------------------------------------------


class SMSBackend:
    """Send one text message; raise on failure (PermanentSendError when retrying is useless).

    Return only once the provider has accepted the message. Implementations must time out well
    inside NOTIFICATION_CLAIM_TIMEOUT_SECONDS.
    """

    def __init__(self, **options: Any) -> None:
        self.options = options

    def send(self, *, to: str, body: str, reference: str) -> None:
        raise NotImplementedError

    # Replies. The built-in protocol: JSON {message_id, from, body}, signed with
    # X-Signature: sha256=<hex HMAC-SHA256 of the raw body with SMS_INBOUND_SECRET>. A provider's
    # adapter overrides both methods with the provider's own format and signature.

    def verify_inbound(self, request: InboundRequest) -> bool:
        """True only when the request carries a valid signature (else 403, nothing done)."""
        secret = settings.SMS_INBOUND_SECRET
        given = request.headers.get(INBOUND_SIGNATURE_HEADER, "")
        if not secret or not given:
            return False
        return hmac.compare_digest(given.strip().lower(), inbound_signature(request.body, secret))

    def parse_inbound(self, request: InboundRequest) -> InboundSMS:
        """The message in a verified request, or InboundInvalid."""
        try:
            data = json.loads(request.body)
        except ValueError as exc:
            raise InboundInvalid({"non_field_errors": ["The body is not JSON."]}) from exc
        if not isinstance(data, dict):
            raise InboundInvalid({"non_field_errors": ["Expected a JSON object."]})
        errors: dict[str, list[str]] = {}
        limits = {
            "message_id": INBOUND_ID_MAX_LENGTH,
            "from": INBOUND_SENDER_MAX_LENGTH,
            "body": None,
        }
        for name, limit in limits.items():
            value = data.get(name)
            if not isinstance(value, str) or (name != "body" and not value.strip()):
                errors[name] = [
                    "A non-empty string is required." if name != "body" else "A string is required."
                ]
            elif limit is not None and len(value) > limit:
                errors[name] = [f"At most {limit} characters."]
        if errors:
            raise InboundInvalid(errors)
        return InboundSMS(message_id=data["message_id"], sender=data["from"], body=data["body"])


class ConsoleSMSBackend(SMSBackend):
    """Writes each message to stdout (development and the run command)."""

    _lock = threading.Lock()

    def __init__(self, stream: TextIO | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.stream = stream or sys.stdout

    def send(self, *, to: str, body: str, reference: str) -> None:
        with self._lock:
            self.stream.write(f"SMS to {to} (ref {reference})\n{body}\n{'-' * 79}\n")
            self.stream.flush()


@dataclass(frozen=True)
class SentSMS:
    to: str
    body: str
    reference: str


# Messages "sent" by LocmemSMSBackend, like django.core.mail.outbox for email.
outbox: list[SentSMS] = []


class LocmemSMSBackend(SMSBackend):
    """Keeps messages in `scheduling.channels.outbox` (tests)."""

    def send(self, *, to: str, body: str, reference: str) -> None:
        outbox.append(SentSMS(to=to, body=body, reference=reference))


def get_sms_backend() -> SMSBackend:
    backend_class = import_string(settings.SMS_BACKEND)
    backend: SMSBackend = backend_class(**settings.SMS_BACKEND_OPTIONS)
    return backend


def send_sms(message: Message) -> None:
    get_sms_backend().send(to=message.to, body=message.body, reference=message.reference)


def deliver(channel: str, message: Message) -> None:
    """Hand one message to its channel; returns once the channel has accepted it."""
    if channel == "email":
        send_email(message)
    elif channel == "sms":
        send_sms(message)
    else:
        raise PermanentSendError(f"unknown channel {channel!r}")
