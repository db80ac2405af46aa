"""Races decided by PostgreSQL: many requests at once for the same slot, series or session.

Each request runs in its own thread with its own database connection, through the whole HTTP
stack. Tokens and data are created before the threads start.
"""

import itertools
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection

from clinic.models import Role
from scheduling.models import Session
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.factories import PatientFactory, RoomFactory, ScreeningFactory, SeriesFactory

REQUESTS = 100
WORKERS = 16


def race(calls):
    """Run the calls concurrently; Counter of (status, code) of the answers."""

    def run(call):
        try:
            response = call()
            return response.status_code, response.json().get("code")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return Counter(pool.map(run, calls))


@pytest.fixture
def clients(api, front_desk):
    def make(n):
        made = [api(front_desk) for _ in range(n)]
        for client in made:
            client.raise_request_exception = False  # a crash must show up as a 500, counted
        return made

    return make


@pytest.fixture
def many_series(clinic, front_desk):
    """`n` series, each of its own eligible patient."""

    def make(n, **kwargs):
        patients = PatientFactory.create_batch(n, clinic=clinic)
        for patient in patients:
            ScreeningFactory(patient=patient, screened_by=front_desk)
        return [SeriesFactory(patient=p, created_by=front_desk, **kwargs) for p in patients]

    return make


@pytest.fixture
def many_providers(make_user, clinic):
    return lambda n: [make_user(Role.PROVIDER, clinic) for _ in range(n)]


def post_booking(client, series, provider, starts_at, **extra):
    body = {
        "series": str(series.id),
        "provider": str(provider.id),
        "starts_at": starts_at.isoformat(),
        **extra,
    }
    return lambda: client.post("/api/v1/sessions/", body)


@pytest.mark.django_db(transaction=True)
def test_one_provider_one_time_exactly_one_booking(clients, many_series, provider, at):
    series = many_series(REQUESTS)
    calls = [
        post_booking(client, s, provider, at(5))
        for client, s in zip(clients(REQUESTS), series, strict=True)
    ]
    assert race(calls) == {(201, None): 1, (409, "provider_unavailable"): REQUESTS - 1}
    assert Session.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_one_room_one_time_exactly_one_booking(clients, many_series, many_providers, clinic, at):
    room = RoomFactory(clinic=clinic)
    calls = [
        post_booking(client, s, p, at(5), room=str(room.id))
        for client, s, p in zip(
            clients(REQUESTS), many_series(REQUESTS), many_providers(REQUESTS), strict=True
        )
    ]
    assert race(calls) == {(201, None): 1, (409, "room_unavailable"): REQUESTS - 1}
    assert Session.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_one_patient_one_time_exactly_one_booking(clients, many_providers, patient, front_desk, at):
    # Several series of the same patient, so the series rules are not what stops them.
    series = [
        SeriesFactory(patient=patient, created_by=front_desk, planned_sessions=6) for _ in range(4)
    ]
    calls = [
        post_booking(client, series[i % len(series)], p, at(5))
        for i, (client, p) in enumerate(
            zip(clients(REQUESTS), many_providers(REQUESTS), strict=True)
        )
    ]
    assert race(calls) == {(201, None): 1, (409, "patient_unavailable"): REQUESTS - 1}
    assert Session.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_partly_overlapping_times_exactly_one_booking(clients, many_series, provider, at):
    # Two-hour sessions starting a minute apart: every pair overlaps, none exactly.
    calls = [
        post_booking(client, s, provider, at(5) + timedelta(minutes=i), duration_minutes=120)
        for i, (client, s) in enumerate(zip(clients(REQUESTS), many_series(REQUESTS), strict=True))
    ]
    assert race(calls) == {(201, None): 1, (409, "provider_unavailable"): REQUESTS - 1}
    assert Session.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_series_never_takes_more_than_its_planned_sessions(clients, many_providers, series, at):
    # Five well-spaced days for a three-session series, all asked for at once.
    days = [1, 22, 43, 64, 85]
    calls = [
        post_booking(client, series, p, at(day))
        for client, p, day in zip(clients(5), many_providers(5), days, strict=True)
    ]
    assert race(calls) == {(201, None): 3, (409, "series_full"): 2}
    assert Session.objects.filter(series=series).count() == 3


@pytest.mark.django_db(transaction=True)
def test_racing_status_changes_have_one_winner(clients, many_series, provider, at):
    from tests.factories import SessionFactory
    from tests.factories.scheduling import ATTESTATION

    # Today (check-in opens on the session's day), 23:00 local.
    session = SessionFactory(series=many_series(1)[0], provider=provider, starts_at=at(0, 23))
    actions = ["check-in", "cancel", "no-show"] * 7
    calls = [
        (
            lambda c=client, a=action: c.post(
                f"/api/v1/sessions/{session.id}/{a}/", ATTESTATION, format="json"
            )
        )
        for client, action in zip(clients(len(actions)), actions, strict=True)
    ]
    outcome = race(calls)
    session.refresh_from_db()
    # check-in may win and then be followed by one cancel or no-show; nothing else changes it.
    assert outcome[(200, None)] in (1, 2)
    assert outcome[(409, "invalid_state")] == len(actions) - outcome[(200, None)]
    assert session.status in ("checked_in", "cancelled", "no_show")


@pytest.mark.django_db(transaction=True)
def test_fifty_series_bookings_for_one_providers_slots_never_overlap_all_or_nothing(
    clients, many_series, provider, at
):
    """Fifty whole series (3 sessions, 30 days apart) for one provider, their first sessions on
    ten days at overlapping times, so plans collide on one, two or three of their sessions."""
    calls = 50
    series = many_series(calls, planned_sessions=3, interval_days=30)
    bodies = [
        {
            "provider": str(provider.id),
            "first_starts_at": (
                at(5 + 30 * (i % 2) + (i % 5), 10) + timedelta(minutes=20 * (i % 3))
            ).isoformat(),
        }
        for i in range(calls)
    ]
    outcome = race(
        [
            (lambda c=client, s=s, b=body: c.post(f"/api/v1/series/{s.id}/book/", b))
            for client, s, body in zip(clients(calls), series, bodies, strict=True)
        ]
    )
    assert set(outcome) <= {(201, None), (409, "provider_unavailable")}, outcome
    assert outcome[(201, None)] >= 5
    booked = list(
        Session.objects.order_by("starts_at").values_list("series_id", "starts_at", "ends_at")
    )
    per_series = Counter(series_id for series_id, _, _ in booked)
    assert set(per_series.values()) == {3}
    assert len(per_series) == outcome[(201, None)]
    for (_, _, ends_at), (_, next_starts_at, _) in itertools.pairwise(booked):
        assert ends_at <= next_starts_at


@pytest.mark.django_db(transaction=True)
def test_time_off_racing_bookings_one_of_them_wins(
    api, clients, admin, many_series, many_providers, at
):
    """Each provider gets one booking and one overlapping time off at the same moment."""
    pairs = 12
    providers = many_providers(pairs)
    series = many_series(pairs)
    admin_clients = [api(admin) for _ in range(pairs)]
    calls = []
    for i, (provider, s, desk, boss) in enumerate(
        zip(providers, series, clients(pairs), admin_clients, strict=True)
    ):
        starts_at = at(5 + i, 10)
        calls.append(post_booking(desk, s, provider, starts_at))
        body = {
            "provider": str(provider.id),
            "starts_at": (starts_at - timedelta(minutes=30)).isoformat(),
            "ends_at": (starts_at + timedelta(minutes=30)).isoformat(),
        }
        calls.append(lambda c=boss, b=body: c.post("/api/v1/time-off/", b))
    outcome = race(calls)
    from scheduling.models import TimeOff

    booked = Session.objects.count()
    away = TimeOff.objects.count()
    assert booked + away == pairs
    assert outcome == Counter(
        {
            (201, None): pairs,
            **({(409, "provider_unavailable"): away} if away else {}),
            **({(409, "sessions_conflict"): booked} if booked else {}),
        }
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["cancel", "no-show"])
def test_a_session_that_gives_up_its_place_waits_for_the_series_lock(
    api, front_desk, many_series, provider, at, action
):
    """A cancel or no-show frees a place in the series' numbering, so it takes the series'
    lock, which a booking holds while it counts the places before its own: the booking's
    answered `number` is then the one its session has when it commits."""
    import threading

    from django.db import transaction

    from scheduling.models import Series
    from tests.factories import SessionFactory

    series = many_series(1)[0]
    session = SessionFactory(
        series=series, provider=provider, starts_at=at(-1 if action == "no-show" else 1)
    )
    locked, release, answers = threading.Event(), threading.Event(), []

    def hold_the_series_lock():  # as a booking of the series does while it counts
        try:
            with transaction.atomic():
                Series.objects.select_for_update(no_key=True).get(pk=series.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    def change():
        try:
            answers.append(api(front_desk).post(f"/api/v1/sessions/{session.id}/{action}/", {}))
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_series_lock)
    holder.start()
    assert locked.wait(10)
    changer = threading.Thread(target=change)
    changer.start()
    try:
        waiting = 0
        for _ in range(100):
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                )
                waiting = cursor.fetchone()[0]
            if waiting or not changer.is_alive():
                break
            changer.join(0.05)
        assert waiting == 1 and changer.is_alive()
    finally:
        release.set()
        holder.join()
        changer.join()
    assert answers[0].status_code == 200, answers[0].json()
    session.refresh_from_db()
    assert session.status == {"cancel": "cancelled", "no-show": "no_show"}[action]
