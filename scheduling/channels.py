"""How a message leaves the building: email through Django's email backends, SMS through a small
backend interface of our own.

Email: EMAIL_BACKEND (console in development and for the run command, SMTP configured by the
environment, locmem in tests). SMS: SMS_BACKEND is the dotted path of an `SMSBackend` subclass,
built with SMS_BACKEND_OPTIONS as keyword arguments; a real provider's adapter is one small
class implementing `send`.

Every message carries a `reference`, the notification's id, which never changes between
attempts: an adapter whose provider accepts an idempotency key or client reference should pass
it, so the provider itself can drop the one duplicate our outbox cannot rule out (see
scheduling.notifications.sender.send).
"""

from __future__ import annotations

import sys
import threading
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
