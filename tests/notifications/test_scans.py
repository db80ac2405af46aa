"""The beat's scan creates every due notification from the database state, once."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection

from scheduling import channels
from scheduling.models import Session, SessionStatus
from scheduling.notifications import scans
from scheduling.notifications.models import Notification
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.factories import ScreeningFactory, SeriesFactory
from tests.notifications.helpers import delivered, ny, rows


def scan_at(moment):
    with time_machine.travel(moment, tick=False):
        return scans.scan()


# --- session_reminder -------------------------------------------------------------------------


@pytest.mark.django_db
def test_reminder_once_inside_the_lead_time(make_booked_session, recipient):
    inside = make_booked_session(ny(2026, 3, 3, 8, 30))  # 23.5 h ahead
    outside = make_booked_session(ny(2026, 3, 3, 9, 30))  # 24.5 h ahead
    make_booked_session(ny(2026, 3, 2, 8))  # already started
    make_booked_session(ny(2026, 3, 3, 7), status=SessionStatus.CANCELLED)

    scan_at(ny(2026, 3, 2, 9))
    assert rows() == [
        ("session_reminder", "email", "sent", ny(2026, 3, 2, 8, 30)),
        ("session_reminder", "sms", "sent", ny(2026, 3, 2, 8, 30)),
    ]
    assert set(Notification.objects.values_list("session_id", flat=True)) == {inside.id}
    assert delivered() == [("email", recipient.email), ("sms", recipient.phone)]

    scan_at(ny(2026, 3, 2, 9, 15))  # nothing new
    scan_at(ny(2026, 3, 2, 9, 30))
    assert rows(session=outside) == [
        ("session_reminder", "email", "sent", ny(2026, 3, 2, 9, 30)),
        ("session_reminder", "sms", "sent", ny(2026, 3, 2, 9, 30)),
    ]
    assert len(delivered()) == 4


@pytest.mark.django_db
def test_a_session_moved_after_its_reminder_is_reminded_again(make_booked_session):
    session = make_booked_session(ny(2026, 3, 3, 8))
    scan_at(ny(2026, 3, 2, 9))
    session.starts_at, session.ends_at = ny(2026, 3, 10, 8), ny(2026, 3, 10, 9)
    session.save()
    scan_at(ny(2026, 3, 2, 9, 1))
    assert len(delivered()) == 2  # not again for the new time yet
    scan_at(ny(2026, 3, 9, 8))
    assert sorted(r[1:] for r in rows(session=session)) == [
        ("email", "sent", ny(2026, 3, 2, 8)),
        ("email", "sent", ny(2026, 3, 9, 8)),
        ("sms", "sent", ny(2026, 3, 2, 8)),
        ("sms", "sent", ny(2026, 3, 9, 8)),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("lead_hours", "expected_utc", "expected_local"),
    [
        # 24 elapsed hours before Monday 09:00 EDT: Sunday 09:00 EDT, after the 02:00 change.
        (24, datetime(2026, 3, 8, 13, tzinfo=UTC), ny(2026, 3, 8, 9)),
        # 48 elapsed hours cross the change: Saturday 08:00 EST, not 09:00 wall time.
        (48, datetime(2026, 3, 7, 13, tzinfo=UTC), ny(2026, 3, 7, 8)),
    ],
)
def test_reminder_lead_is_elapsed_hours_across_spring_forward(
    clinic, make_booked_session, lead_hours, expected_utc, expected_local
):
    clinic.reminder_lead_hours = lead_hours
    clinic.save()
    # Monday after the spring-forward Sunday (2026-03-08) in New York, 09:00 local = 13:00 UTC.
    session = make_booked_session(ny(2026, 3, 9, 9))
    assert session.starts_at - expected_utc == timedelta(hours=lead_hours)

    scan_at(expected_utc - timedelta(seconds=1))
    assert rows() == []
    scan_at(expected_utc)
    scheduled = set(Notification.objects.values_list("scheduled_for", flat=True))
    assert scheduled == {expected_utc}
    assert expected_utc == expected_local
    assert len(delivered()) == 2


# --- next_session_due -------------------------------------------------------------------------


@pytest.mark.django_db
def test_next_session_due_once_per_gap(make_booked_session, recipient_series, recipient):
    first = make_booked_session(
        ny(2026, 3, 2, 10), status=SessionStatus.COMPLETED, completed_at=ny(2026, 3, 2, 11)
    )
    scan_at(ny(2026, 3, 31, 23))  # due from 1 April (30 days): not yet
    assert rows(kind="next_session_due") == []

    scan_at(ny(2026, 4, 1, 8))  # due today: sent at 10:00 local
    assert rows(kind="next_session_due") == [
        ("next_session_due", "email", "pending", ny(2026, 4, 1, 10)),
        ("next_session_due", "sms", "pending", ny(2026, 4, 1, 10)),
    ]
    scan_at(ny(2026, 4, 1, 10))
    assert [r[2] for r in rows(kind="next_session_due")] == ["sent", "sent"]
    assert set(Notification.objects.values_list("subject_key", flat=True)) == {
        f"series:{recipient_series.id}:after:{first.id}"
    }
    assert [(m.subject, m.body) for m in mail.outbox] == [
        (
            "Time to book your next appointment at Bloom Skin Studio",
            "Hello Ada,\n\nYour next appointment at Bloom Skin Studio is due from Wednesday 1 "
            "April 2026.\n\nPlease contact the clinic to book it.\n\nBloom Skin Studio\n",
        )
    ]

    # Booked, then cancelled: still the same gap, no second nudge.
    second = make_booked_session(ny(2026, 4, 20, 10))
    scan_at(ny(2026, 4, 2, 10))
    second.status = SessionStatus.CANCELLED
    second.save()
    scan_at(ny(2026, 4, 3, 10))
    assert Notification.objects.filter(kind="next_session_due").count() == 2

    # The next treatment opens the next gap.
    make_booked_session(
        ny(2026, 4, 21, 10), status=SessionStatus.COMPLETED, completed_at=ny(2026, 4, 21, 11)
    )
    scan_at(ny(2026, 5, 21, 12))
    assert Notification.objects.filter(kind="next_session_due").count() == 4
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_no_nudge_when_booked_full_or_cancelled(make_booked_session, recipient_series):
    make_booked_session(
        ny(2026, 3, 2, 10), status=SessionStatus.COMPLETED, completed_at=ny(2026, 3, 2, 11)
    )
    booked = make_booked_session(ny(2026, 5, 20, 10))
    scan_at(ny(2026, 4, 10, 12))
    assert rows(kind="next_session_due") == []  # the next session is booked

    booked.status = SessionStatus.COMPLETED
    booked.completed_at = booked.starts_at
    booked.save()
    make_booked_session(
        ny(2026, 6, 25, 10), status=SessionStatus.COMPLETED, completed_at=ny(2026, 6, 25, 11)
    )
    scan_at(ny(2026, 8, 1, 12))
    assert rows(kind="next_session_due") == []  # all three planned sessions done

    recipient_series.planned_sessions = 4
    recipient_series.status = "cancelled"
    recipient_series.save()
    scan_at(ny(2026, 8, 2, 12))
    assert rows(kind="next_session_due") == []


# --- aftercare_checkin ------------------------------------------------------------------------


@pytest.mark.django_db
def test_aftercare_checkin_the_day_after_at_ten_local(make_booked_session):
    session = make_booked_session(
        ny(2026, 3, 10, 14), status=SessionStatus.COMPLETED, completed_at=ny(2026, 3, 10, 15)
    )
    scan_at(ny(2026, 3, 10, 16))
    assert rows(kind="aftercare_checkin") == [
        ("aftercare_checkin", "email", "pending", ny(2026, 3, 11, 10)),
        ("aftercare_checkin", "sms", "pending", ny(2026, 3, 11, 10)),
    ]
    scan_at(ny(2026, 3, 11, 9, 59))
    assert delivered() == []
    scan_at(ny(2026, 3, 11, 10))
    scan_at(ny(2026, 3, 11, 11))
    assert [r[2] for r in rows(kind="aftercare_checkin")] == ["sent", "sent"]
    assert set(Notification.objects.values_list("subject_key", "session_id")) == {
        (str(session.id), session.id)
    }
    assert [m.body for m in channels.outbox] == [
        "Bloom Skin Studio: thank you for your visit on Tuesday 10 March 2026. We hope all is "
        "well. If you have any questions, please contact the clinic."
    ]


@pytest.mark.django_db
def test_a_late_aftercare_checkin_waits_for_daytime(make_booked_session):
    make_booked_session(
        ny(2026, 3, 10, 14), status=SessionStatus.COMPLETED, completed_at=ny(2026, 3, 10, 15)
    )
    scan_at(ny(2026, 3, 11, 21))  # the scans did not run all day
    assert {r[3] for r in rows(kind="aftercare_checkin")} == {ny(2026, 3, 12, 9)}
    assert delivered() == []


# --- flags and screening_expiring -------------------------------------------------------------


@pytest.mark.django_db
def test_screening_expiring_once_when_a_session_is_first_flagged(
    make_recipient, front_desk, make_booked_session
):
    patient = make_recipient(screened_on=ny(2026, 3, 2).date())  # valid until 31 May
    series = SeriesFactory(patient=patient, created_by=front_desk)
    before = make_booked_session(ny(2026, 5, 20, 10), series=series)
    after = make_booked_session(ny(2026, 6, 5, 10), series=series)

    result = scan_at(ny(2026, 3, 2, 12))
    assert result["flags_changed"] == 1
    assert (Session.objects.get(pk=before.pk).flags, Session.objects.get(pk=after.pk).flags) == (
        [],
        ["screening_expired"],
    )
    assert rows(kind="screening_expiring") == [
        ("screening_expiring", "email", "sent", ny(2026, 3, 2, 12)),
        ("screening_expiring", "sms", "sent", ny(2026, 3, 2, 12)),
    ]
    assert [m.subject for m in mail.outbox] == [
        "Before your appointment at Bloom Skin Studio on Friday 5 June 2026 at 10:00 EDT"
    ]

    scan_at(ny(2026, 3, 3, 12))
    assert len(delivered()) == 2

    # Re-screened: the flag goes; it never brings another message about that session.
    ScreeningFactory(patient=patient, screened_by=front_desk, screened_on=ny(2026, 3, 20).date())
    assert scan_at(ny(2026, 3, 20, 12))["flags_changed"] == 1
    assert Session.objects.get(pk=after.pk).flags == []
    assert Notification.objects.filter(kind="screening_expiring").count() == 2


@pytest.mark.django_db
def test_a_flag_raised_at_night_is_told_in_the_morning(
    make_recipient, front_desk, make_booked_session
):
    patient = make_recipient(screened_on=ny(2026, 3, 2).date())
    make_booked_session(
        ny(2026, 6, 5, 10), series=SeriesFactory(patient=patient, created_by=front_desk)
    )
    scan_at(ny(2026, 3, 2, 23))
    assert {r[2:] for r in rows(kind="screening_expiring")} == {("pending", ny(2026, 3, 3, 9))}


# --- two scans --------------------------------------------------------------------------------


def _busy_day(make_booked_session):
    """Due work of every scan-made kind at 2026-03-11 10:00 New York."""
    make_booked_session(ny(2026, 3, 12, 9))  # reminder
    make_booked_session(
        ny(2026, 3, 10, 14), status=SessionStatus.COMPLETED, completed_at=ny(2026, 3, 10, 15)
    )
    make_booked_session(
        ny(2026, 2, 1, 10), status=SessionStatus.COMPLETED, completed_at=ny(2026, 2, 1, 11)
    )


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_scans_give_one_notification_each(make_booked_session):
    _busy_day(make_booked_session)
    barrier = threading.Barrier(2)
    results = []

    def beat():
        try:
            with time_machine.travel(ny(2026, 3, 11, 10), tick=False):
                barrier.wait()
                results.append(scans.scan())
        finally:
            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted((r[2], r[0], r[1]) for r in rows()) == [
        ("sent", kind, channel)
        for kind in ("aftercare_checkin", "session_reminder")
        for channel in ("email", "sms")
    ]
    assert len(delivered()) == 4
    assert sum(r.get("send_sent", 0) for r in results) == 4


@pytest.mark.django_db(transaction=True)
def test_concurrent_creation_without_the_lock_still_makes_one_row(make_booked_session):
    """The scan lease is an extra: the outbox's unique key alone keeps it to one."""
    for hour in range(9, 17):
        make_booked_session(ny(2026, 3, 12, hour))
    barrier = threading.Barrier(3)
    created = []

    def create():
        try:
            barrier.wait()
            created.append(scans.queue_session_reminders(ny(2026, 3, 11, 20)))
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(created) == Notification.objects.count() == 16


@pytest.mark.django_db
def test_two_scans_in_a_row_send_nothing_twice(make_booked_session):
    _busy_day(make_booked_session)
    first = scan_at(ny(2026, 3, 11, 10))
    second = scan_at(ny(2026, 3, 11, 10, 1))
    assert (first["send_sent"], second.get("send_sent", 0)) == (4, 0)
    assert second == {
        "session_reminder": 0,
        "next_session_due": 0,
        "aftercare_checkin": 0,
        "flags_changed": 0,
        "screening_expiring": 0,
        "reclaimed": 0,
    }
