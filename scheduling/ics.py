"""A provider's sessions as an RFC 5545 calendar (the icalendar library writes it).

What a phone's calendar shows is the session's number, its room and the patient's initials:
no name, no indication, no clinical detail (the contract's clarification of v1.1).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from icalendar import Calendar, Event

from clinic.models import User
from scheduling.models import ACTIVE_SESSION_STATUSES, Session
from scheduling.selectors import sessions_with_number

FEED_PAST_DAYS = 30
PRODID = "-//SkinPen clinic API//calendar feed//EN"


def initials(first_name: str, last_name: str) -> str:
    names = (name.strip() for name in (first_name, last_name))
    return "".join(f"{name[0].upper()}." for name in names if name)


def summary(number: int | None, room_name: str | None, patient_initials: str) -> str:
    parts = [f"Session {number}" if number else "Session", room_name or "No room"]
    if patient_initials:
        parts.append(patient_initials)
    return " · ".join(parts)


def render_feed(staff: User, *, now: datetime) -> bytes:
    """Booked, checked-in and completed sessions of the provider from 30 days ago on.

    One query: numbers, rooms and initials come with the sessions."""
    sessions = (
        sessions_with_number(
            Session.objects.filter(
                provider=staff,
                status__in=ACTIVE_SESSION_STATUSES,
                starts_at__gte=now - timedelta(days=FEED_PAST_DAYS),
            )
        )
        .select_related("room", "patient")
        .only(
            "id",
            "series_id",
            "starts_at",
            "ends_at",
            "status",
            "updated_at",
            "room__name",
            "patient__first_name",
            "patient__last_name",
        )
        .order_by("starts_at", "id")
    )
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", f"Sessions of {staff.full_name or staff.username}")
    stamp = now.astimezone(UTC)
    for session in sessions:
        event = Event()
        event.add("uid", str(session.id))
        event.add("dtstamp", stamp)
        event.add("dtstart", session.starts_at.astimezone(UTC))
        event.add("dtend", session.ends_at.astimezone(UTC))
        event.add("last-modified", session.updated_at.astimezone(UTC))
        room_name = session.room.name if session.room is not None else None
        event.add(
            "summary",
            summary(
                session.number,  # type: ignore[attr-defined]
                room_name,
                initials(session.patient.first_name, session.patient.last_name),
            ),
        )
        if room_name:
            event.add("location", room_name)
        event.add("status", "CONFIRMED")
        calendar.add_component(event)
    return calendar.to_ical()
