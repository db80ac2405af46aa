"""What a notification says: the clinic's name and local dates and times, never clinical detail."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from clinic.models import User
from scheduling import channels
from scheduling.models import Session
from scheduling.notifications.models import Channel, Notification, NotificationKind
from scheduling.rules import REPLY_INSTRUCTIONS


def _day_text(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B %Y}"


def _moment_text(moment: datetime) -> str:
    return f"{_day_text(moment.date())} at {moment:%H:%M} {moment:%Z}"


# (subject, body) of a message to staff, by kind. Registered by the app whose fact it tells
# (treatments: recall notices), since this app sits below it.
StaffText = Callable[[Notification], tuple[str, str]]
_staff_texts: dict[str, StaffText] = {}


def register_staff_text(kind: str, text: StaffText) -> None:
    _staff_texts[kind] = text


def _compose_to_staff(notification: Notification, staff: User) -> channels.Message:
    subject, body = _staff_texts[notification.kind](notification)
    greeting = f"Hello {staff.full_name or staff.username},"
    return channels.Message(
        to=staff.email,
        subject=subject,
        body=f"{greeting}\n\n{body}\n\n{notification.clinic.name}\n",
        reference=str(notification.pk),
    )


def compose(notification: Notification) -> channels.Message:
    """Subject and body: the clinic's name and local dates and times, never clinical detail.

    A message to staff says what the registered text of its kind says."""
    if notification.staff is not None:
        return _compose_to_staff(notification, notification.staff)
    clinic = notification.clinic.name
    local = notification.clinic  # its local time: Clinic.localtime, local_date, today
    session = notification.session
    kind = notification.kind
    sms_closing = ""
    if kind == NotificationKind.SESSION_REMINDER and session is not None:
        when = _moment_text(local.localtime(session.starts_at))
        subject = f"Reminder: your appointment at {clinic} on {when}"
        text = f"This is a reminder of your appointment at {clinic} on {when}."
        sms = f"{clinic}: reminder of your appointment on {when}."
        closing = "If you need to change it, please contact the clinic."
        # Replies are read (scheduling.notifications.inbound); the text ends with how.
        sms_closing = REPLY_INSTRUCTIONS
    elif kind == NotificationKind.SCREENING_EXPIRING and session is not None:
        when = _moment_text(local.localtime(session.starts_at))
        subject = f"Before your appointment at {clinic} on {when}"
        text = (
            f"Before your appointment at {clinic} on {when}, we need to update your "
            "pre-appointment questionnaire with you."
        )
        sms = f"{clinic}: before your appointment on {when} we need to update your questionnaire."
        closing = "Please contact the clinic to arrange it."
    elif kind == NotificationKind.NEXT_SESSION_DUE and session is not None:
        due = _day_text(next_due_after(session))
        subject = f"Time to book your next appointment at {clinic}"
        text = f"Your next appointment at {clinic} is due from {due}."
        sms = f"{clinic}: your next appointment is due from {due}."
        closing = "Please contact the clinic to book it."
    elif kind == NotificationKind.AFTERCARE_CHECKIN and session is not None:
        visited = _day_text(local.local_date(session.completed_at or session.starts_at))
        subject = f"Following up on your visit to {clinic}"
        text = f"Thank you for your visit to {clinic} on {visited}. We hope all is well."
        sms = f"{clinic}: thank you for your visit on {visited}. We hope all is well."
        closing = "If you have any questions, please contact the clinic."
    else:
        sent_on = _day_text(local.today())
        subject = f"Please contact {clinic}"
        text = f"{clinic} would like to speak with you about a recent visit ({sent_on})."
        sms = f"{clinic}: we would like to speak with you about a recent visit."
        closing = "Please contact the clinic."
    patient = notification.patient
    if patient is None:
        raise channels.PermanentSendError("a notification without a recipient")
    if notification.channel == Channel.SMS:
        return channels.Message(
            to=patient.phone,
            subject="",
            body=f"{sms} {sms_closing or closing}",
            reference=str(notification.pk),
        )
    body = f"Hello {patient.first_name},\n\n{text}\n\n{closing}\n\n{clinic}\n"
    return channels.Message(
        to=patient.email, subject=subject, body=body, reference=str(notification.pk)
    )


def next_due_after(session: Session) -> date:
    """The day the series' next session is due, one interval after this treated session."""
    treated = session.clinic.local_date(session.completed_at or session.starts_at)
    return treated + timedelta(days=session.series.interval_days)
