"""Small helpers shared by the notification tests."""

from datetime import datetime
from zoneinfo import ZoneInfo

from django.core import mail

from scheduling import channels
from scheduling.notifications.models import Notification

NEW_YORK = ZoneInfo("America/New_York")


def ny(*args: int) -> datetime:
    """A wall-clock time in New York, the test clinic's zone."""
    return datetime(*args, tzinfo=NEW_YORK)


def rows(**filters) -> list[tuple]:
    """(kind, channel, status, scheduled_for) of the outbox rows, in a stable order."""
    return list(
        Notification.objects.filter(**filters)
        .order_by("kind", "subject_key", "channel")
        .values_list("kind", "channel", "status", "scheduled_for")
    )


def delivered() -> list[tuple[str, str]]:
    """Every message handed to a channel so far: (channel, recipient)."""
    emails = [("email", to) for message in mail.outbox for to in message.to]
    texts = [("sms", message.to) for message in channels.outbox]
    return emails + texts
