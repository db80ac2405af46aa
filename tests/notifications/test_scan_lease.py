"""One scan at a time creates notifications: the lease row (scans._scan_lease)."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.db.models.functions import Now

from scheduling.models import ScanLease
from scheduling.notifications import scans
from scheduling.notifications.models import Notification
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.notifications.helpers import ny

CREATING = {
    "session_reminder",
    "next_session_due",
    "aftercare_checkin",
    "flags_changed",
    "screening_expiring",
}


def scan_at(moment):
    with time_machine.travel(moment, tick=False):
        return scans.scan()


def hold_lease(holder: str, *, for_: timedelta) -> None:
    """Another scan's lease, timed by the database's clock as the scan's own is."""
    ScanLease.objects.create(name=scans.SCAN_LEASE, holder=holder, held_until=Now() + for_)


@pytest.mark.django_db
def test_a_scan_gives_its_lease_back():
    with scans._scan_lease() as acquired:
        assert acquired
        lease = ScanLease.objects.get()
        assert lease.name == scans.SCAN_LEASE
        assert lease.holder.endswith("/scan")  # "<uuid>/scan": no heartbeat in tests
    assert not ScanLease.objects.exists()


@pytest.mark.django_db
def test_a_scan_gives_its_lease_back_when_it_fails(monkeypatch, make_booked_session):
    make_booked_session(ny(2026, 3, 12, 9))

    def broken(now):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(scans, "queue_session_reminders", broken)
    with pytest.raises(RuntimeError):
        scan_at(ny(2026, 3, 11, 10))
    assert not ScanLease.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_lease_that_cannot_be_given_back_does_not_hide_the_scans_error():
    """The scan's connection killed before it gives the lease back (a real lost connection,
    from another session): the scan's own error is the one raised, and the lease is left to
    lapse."""

    def kill(pid):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        finally:
            connection.close()

    with pytest.raises(RuntimeError, match="the scan's own"), scans._scan_lease() as acquired:
        assert acquired
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        killer = threading.Thread(target=kill, args=[pid])
        killer.start()
        killer.join()
        raise RuntimeError("the scan's own")
    connection.close()  # the killed one
    assert ScanLease.objects.count() == 1  # lapses at held_until


@pytest.mark.django_db
def test_while_a_lease_is_held_a_scan_skips_creating_but_still_sends(make_booked_session):
    first = make_booked_session(ny(2026, 3, 12, 9))  # reminded from 9:00 the day before
    make_booked_session(ny(2026, 3, 12, 11))  # from 11:00
    with time_machine.travel(ny(2026, 3, 11, 10), tick=False):
        queued = scans.queue_session_reminders(ny(2026, 3, 11, 10))
    hold_lease("worker-b/1", for_=timedelta(minutes=5))

    result = scan_at(ny(2026, 3, 11, 11, 30))

    assert CREATING.isdisjoint(result)
    assert result["send_sent"] == queued == 2  # email and SMS of the first session
    assert set(Notification.objects.values_list("session_id", flat=True)) == {first.id}
    assert ScanLease.objects.get().holder == "worker-b/1"  # not given back by someone else


@pytest.mark.django_db
def test_a_lapsed_lease_is_taken_over(make_booked_session):
    """A scan that died holding the lease stops nobody once its time has passed."""
    make_booked_session(ny(2026, 3, 12, 9))
    hold_lease("died/1", for_=-timedelta(seconds=1))

    result = scan_at(ny(2026, 3, 11, 10))

    assert result["session_reminder"] == Notification.objects.count() > 0
    assert not ScanLease.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_lease_holds_across_connections_and_nothing_stays_on_the_connection():
    """Taken and given back by single statements: behind a pooler in transaction mode the two
    may run on different server connections, so no lock may live on the connection between
    them (a session-level advisory lock did)."""
    others = []

    def other_scan():
        try:
            with scans._scan_lease() as acquired:
                others.append(acquired)
        finally:
            connection.close()

    with scans._scan_lease() as acquired:
        assert acquired
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()"
                " AND locktype = 'advisory'"
            )
            assert cursor.fetchone()[0] == 0
        thread = threading.Thread(target=other_scan)
        thread.start()
        thread.join()
        assert others == [False]
    # Given back: the next scan, on another connection, takes it.
    thread = threading.Thread(target=other_scan)
    thread.start()
    thread.join()
    assert others == [False, True]
    assert not ScanLease.objects.exists()
