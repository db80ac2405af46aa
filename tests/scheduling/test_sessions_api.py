"""Sessions after booking: status changes, numbering, rescheduling, completion, the day view,
filters, roles, isolation, audit and query counts."""

import datetime
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from clinic.errors import InvalidState
from clinic.models import AuditEvent, Role
from scheduling import services
from scheduling.models import Series, Session
from scheduling.services import booking
from tests.factories import PatientFactory, SeriesFactory, SessionFactory
from tests.factories.scheduling import ATTESTATION

STATUSES = ["booked", "checked_in", "completed", "cancelled", "no_show"]
# (action, from status) -> resulting status; every other pair is 409 invalid_state.
MOVES = {
    ("check-in", "booked"): "checked_in",
    ("cancel", "booked"): "cancelled",
    ("cancel", "checked_in"): "cancelled",
    ("no-show", "booked"): "no_show",
    ("no-show", "checked_in"): "no_show",
    ("reschedule", "booked"): "booked",
}


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["check-in", "cancel", "no-show", "reschedule"])
@pytest.mark.parametrize("status", STATUSES)
def test_state_machine(front_desk, api, series, at, action, status):
    # Check-in opens on the session's own day (today, 23:00 local, is always that day).
    starts_at = at(0, 23) if action == "check-in" else at(3)
    session = SessionFactory(series=series, starts_at=starts_at, status=status)
    body = {
        "check-in": ATTESTATION,
        "reschedule": {"starts_at": at(4).isoformat()},
    }.get(action, {})
    response = api(front_desk).post(f"/api/v1/sessions/{session.id}/{action}/", body, format="json")
    session.refresh_from_db()
    if (action, status) in MOVES:
        assert response.status_code == 200, response.content
        assert response.json()["status"] == session.status == MOVES[action, status]
    else:
        assert (response.status_code, response.json()["code"]) == (409, "invalid_state")
        assert session.status == status


@pytest.mark.django_db
def test_check_in_and_cancel_record_when_and_why(front_desk, api, series, at):
    client = api(front_desk)
    session = SessionFactory(series=series, starts_at=at(0, 23), flags=["screening_expired"])
    body = client.post(
        f"/api/v1/sessions/{session.id}/check-in/", ATTESTATION, format="json"
    ).json()
    assert body["checked_in_at"] is not None
    assert body["attestation"] == {
        **ATTESTATION,
        "attested_at": body["checked_in_at"],
        "attested_by": str(front_desk.id),
    }
    assert body["flags"] == ["screening_expired"]
    body = client.post(
        f"/api/v1/sessions/{session.id}/cancel/", {"reason": "Feeling unwell"}
    ).json()
    assert (body["status"], body["cancel_reason"], body["number"], body["flags"]) == (
        "cancelled",
        "Feeling unwell",
        None,
        [],
    )
    actions = AuditEvent.objects.filter(object_id=str(session.id)).values_list("action", flat=True)
    assert sorted(actions) == ["session.cancel", "session.check_in"]


@pytest.mark.django_db
def test_the_booking_answer_is_the_session_as_read_back(front_desk, provider, api, series, at):
    """The booking answers from what it wrote (no read back): exactly what a read of the
    session then shows, its number included, booked out of time order and given with an
    offset other than UTC's."""
    series.planned_sessions = 4
    series.save()
    client = api(front_desk)
    plus_two = datetime.timezone(timedelta(hours=2))
    answers = []
    for day in (60, 1, 30):
        response = client.post(
            "/api/v1/sessions/",
            {
                "series": str(series.id),
                "provider": str(provider.id),
                "starts_at": at(day).astimezone(plus_two).isoformat(),
                "duration_minutes": 45,
            },
        )
        assert response.status_code == 201, response.content
        answers.append(response.json())
    # Each as it was booked: the one on day 60 was first of one, then first of two.
    assert [answer["number"] for answer in answers] == [1, 1, 2]
    last = answers[-1]
    assert client.get(f"/api/v1/sessions/{last['id']}/").json() == last


@pytest.mark.django_db
def test_number_stays_right_after_cancel_and_reschedule(front_desk, provider, api, series, at):
    series.planned_sessions = 4
    series.save()
    client = api(front_desk)

    def book(day):
        body = {
            "series": str(series.id),
            "provider": str(provider.id),
            "starts_at": at(day).isoformat(),
        }
        return client.post("/api/v1/sessions/", body).json()["id"]

    first, second, third = book(1), book(30), book(60)

    def numbers():
        rows = client.get("/api/v1/sessions/", {"series": str(series.id)}).json()["results"]
        return {row["id"]: row["number"] for row in rows}

    assert numbers() == {first: 1, second: 2, third: 3}
    client.post(f"/api/v1/sessions/{second}/cancel/")
    assert numbers() == {first: 1, second: None, third: 2}
    # The first moves after the third: numbers follow the time order.
    moved = client.post(f"/api/v1/sessions/{first}/reschedule/", {"starts_at": at(85).isoformat()})
    assert (moved.status_code, moved.json()["number"]) == (200, 2)
    assert numbers() == {first: 2, second: None, third: 1}
    # A filtered view still numbers within the whole series.
    day = at(85).date().isoformat()
    assert [
        r["number"] for r in client.get("/api/v1/sessions/", {"date": day}).json()["results"]
    ] == [2]


@pytest.mark.django_db
def test_reschedule_runs_every_booking_check(
    front_desk, provider, api, series, at, make_series, make_patient
):
    client = api(front_desk)
    session = SessionFactory(series=series, provider=provider, starts_at=at(3))
    SessionFactory(series=series, starts_at=at(30))
    other = SessionFactory(
        series=make_series(patient=make_patient()), provider=provider, starts_at=at(4)
    )
    url = f"/api/v1/sessions/{session.id}/reschedule/"

    def code(**body):
        response = client.post(url, body)
        return response.status_code, response.json().get("code")

    assert code(starts_at=other.starts_at.isoformat()) == (409, "provider_unavailable")
    assert code(starts_at=at(20).isoformat()) == (422, "interval_too_short")
    assert code(starts_at=(timezone.now() - timedelta(hours=1)).isoformat()) == (400, "invalid")
    # Moving within its own slot does not collide with itself.
    assert code(starts_at=at(3, 10, 30).isoformat(), duration_minutes=30) == (200, None)
    session.refresh_from_db()
    assert (session.starts_at, session.duration_minutes) == (at(3, 10, 30), 30)
    # Past the screening's validity: moved, and flagged.
    response = client.post(url, {"starts_at": at(95).isoformat()})
    assert (response.status_code, response.json()["flags"]) == (200, ["screening_expired"])
    response = client.post(url, {"starts_at": at(2).isoformat()})
    assert (response.json()["flags"], response.json()["duration_minutes"]) == ([], 30)
    assert AuditEvent.objects.filter(action="session.reschedule").count() == 3


@pytest.mark.django_db
def test_reschedule_may_change_provider_and_room(front_desk, api, series, at, room, make_provider):
    session = SessionFactory(series=series, starts_at=at(3), room=room)
    new_provider = make_provider()
    response = api(front_desk).post(
        f"/api/v1/sessions/{session.id}/reschedule/",
        {"starts_at": at(3).isoformat(), "provider": str(new_provider.id), "room": None},
    )
    assert response.status_code == 200
    assert (response.json()["provider"], response.json()["room"]) == (str(new_provider.id), None)


@pytest.mark.django_db
def test_complete_session_completes_the_series_with_its_last_planned_session(
    front_desk, series, at
):
    # Only a checked-in session is completed (v1 clarified).
    sessions = [
        SessionFactory(series=series, starts_at=at(d), status="checked_in") for d in (1, 30)
    ]
    last = SessionFactory(series=series, starts_at=at(60), status="checked_in")
    now = timezone.now()
    for session in sessions:
        assert (
            services.complete_session(actor=front_desk, session=session, performed_at=now).status
            == "completed"
        )
        assert Series.objects.get(pk=series.pk).status == "active"
    services.complete_session(actor=front_desk, session=last, performed_at=now)
    series.refresh_from_db()
    assert (series.status, series.completed_at) == ("completed", now)
    assert AuditEvent.objects.filter(action="series.complete").count() == 1
    with pytest.raises(InvalidState):
        services.complete_session(actor=front_desk, session=last, performed_at=now)


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["cancelled", "no_show"])
def test_complete_session_refuses_a_session_that_did_not_happen(front_desk, series, at, status):
    session = SessionFactory(series=series, starts_at=at(1), status=status)
    with pytest.raises(InvalidState):
        services.complete_session(actor=front_desk, session=session, performed_at=timezone.now())


@pytest.mark.django_db
def test_the_day_view_follows_the_clinics_calendar_across_dst(front_desk, api, clinic):
    """America/New_York: 2026-03-08 has 23 hours, 2026-11-01 has 25."""
    assert clinic.timezone == "America/New_York"
    zone = ZoneInfo("America/New_York")
    with time_machine.travel(datetime.datetime(2026, 1, 15, 12, tzinfo=UTC), tick=False):
        client = api(front_desk)

        def local(y, m, d, h, mi, fold=0):
            return datetime.datetime(y, m, d, h, mi, tzinfo=zone, fold=fold)

        times = {
            "mar7_2330": local(2026, 3, 7, 23, 30),
            "mar8_0030": local(2026, 3, 8, 0, 30),
            "mar8_0330": local(2026, 3, 8, 3, 30),  # just after the jump from 02:00 to 03:00
            "mar8_2330": local(2026, 3, 8, 23, 30),
            "mar9_0030": local(2026, 3, 9, 0, 30),
            "oct31_2330": local(2026, 10, 31, 23, 30),
            "nov1_0030": local(2026, 11, 1, 0, 30),
            "nov1_0130_edt": local(2026, 11, 1, 1, 30, fold=0),
            "nov1_0130_est": local(2026, 11, 1, 1, 30, fold=1),  # the repeated hour
            "nov1_2330": local(2026, 11, 1, 23, 30),
            "nov2_0030": local(2026, 11, 2, 0, 30),
        }
        ids = {}
        for name, starts_at in times.items():
            series = SeriesFactory(patient=PatientFactory(clinic=clinic), created_by=front_desk)
            ids[
                str(
                    SessionFactory(
                        series=series,
                        starts_at=starts_at,
                        ends_at=starts_at + timedelta(minutes=30),
                    ).id
                )
            ] = name

        def day(value):
            rows = client.get("/api/v1/sessions/", {"date": value}).json()["results"]
            return [ids[row["id"]] for row in rows]

        assert day("2026-03-08") == ["mar8_0030", "mar8_0330", "mar8_2330"]
        assert day("2026-11-01") == ["nov1_0030", "nov1_0130_edt", "nov1_0130_est", "nov1_2330"]
        assert day("2026-03-07") == ["mar7_2330"]
        assert day("2026-11-02") == ["nov2_0030"]
        assert client.get("/api/v1/sessions/", {"date": "2026-02-30"}).json()["code"] == "invalid"


@pytest.mark.django_db
def test_filters(front_desk, api, series, at, room, make_series, make_patient, make_provider):
    client = api(front_desk)
    mine = SessionFactory(series=series, starts_at=at(2), room=room)
    other_series = make_series(patient=make_patient())
    theirs = SessionFactory(series=other_series, starts_at=at(2, 14), flags=["not_eligible"])
    gone = SessionFactory(series=other_series, starts_at=at(40), status="cancelled")
    SessionFactory()  # another clinic

    def ids(**params):
        return [row["id"] for row in client.get("/api/v1/sessions/", params).json()["results"]]

    assert ids() == [str(mine.id), str(theirs.id), str(gone.id)]
    assert ids(provider=str(theirs.provider_id)) == [str(theirs.id)]
    assert ids(patient=str(series.patient_id)) == [str(mine.id)]
    assert ids(series=str(other_series.id)) == [str(theirs.id), str(gone.id)]
    assert ids(room=str(room.id)) == [str(mine.id)]
    assert ids(status="cancelled") == [str(gone.id)]
    assert ids(status=["booked", "cancelled"]) == [str(mine.id), str(theirs.id), str(gone.id)]
    assert ids(flagged="true") == [str(theirs.id)]
    assert ids(flagged="false") == [str(mine.id), str(gone.id)]
    assert ids(date=at(2).date().isoformat(), status="booked") == [str(mine.id), str(theirs.id)]
    assert client.get("/api/v1/sessions/", {"status": "lost"}).json()["code"] == "invalid"


@pytest.mark.django_db
def test_another_clinics_session_is_404_everywhere(front_desk, api):
    theirs = SessionFactory()
    client = api(front_desk)
    assert client.get(f"/api/v1/sessions/{theirs.id}/").status_code == 404
    for action in ("check-in", "cancel", "no-show", "reschedule"):
        response = client.post(f"/api/v1/sessions/{theirs.id}/{action}/", {})
        assert (response.status_code, response.json()["code"]) == (404, "not_found")


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.ADMIN, Role.FRONT_DESK, Role.PROVIDER, Role.AUDITOR])
def test_roles(staff_by_role, api, series, at, role):
    user = staff_by_role[role]
    client = api(user)
    provider = staff_by_role[Role.PROVIDER]
    session = SessionFactory(series=series, starts_at=at(2))
    # Of another series of the patient (the interval), today (check-in opens on the day).
    todays = SessionFactory(
        series=SeriesFactory(patient=series.patient, created_by=user), starts_at=at(0, 23)
    )
    writes = [
        client.post(
            "/api/v1/sessions/",
            {
                "series": str(series.id),
                "provider": str(provider.id),
                "starts_at": at(40).isoformat(),
            },
        ),
        client.post(f"/api/v1/sessions/{session.id}/reschedule/", {"starts_at": at(3).isoformat()}),
        client.post(f"/api/v1/sessions/{todays.id}/check-in/", ATTESTATION, format="json"),
        client.post(f"/api/v1/sessions/{session.id}/no-show/"),
    ]
    reads = [client.get("/api/v1/sessions/"), client.get(f"/api/v1/sessions/{session.id}/")]
    assert [r.status_code for r in reads] == [200, 200]
    if role == Role.AUDITOR:
        assert [r.status_code for r in writes] == [403, 403, 403, 403]
        denied = AuditEvent.objects.filter(outcome="denied").values_list("action", flat=True)
        assert sorted(denied) == [
            "session.check_in",
            "session.create",
            "session.no_show",
            "session.reschedule",
        ]
    else:
        assert [r.status_code for r in writes] == [201, 200, 200, 200]


@pytest.mark.django_db
def test_reads_are_audited_per_session(front_desk, api, series, at):
    sessions = [SessionFactory(series=series, starts_at=at(d)) for d in (1, 30)]
    client = api(front_desk)
    client.get("/api/v1/sessions/")
    client.get(f"/api/v1/sessions/{sessions[0].id}/")
    listed = AuditEvent.objects.filter(action="session.list")
    assert sorted(e.object_id for e in listed) == sorted(str(s.id) for s in sessions)
    assert {e.patient_id for e in listed} == {series.patient_id}
    assert AuditEvent.objects.get(action="session.read").object_id == str(sessions[0].id)


@pytest.mark.django_db
def test_session_times_are_instants_with_an_offset(front_desk, api, series, at):
    session = SessionFactory(series=series, starts_at=at(2, 9))
    body = api(front_desk).get(f"/api/v1/sessions/{session.id}/").json()
    parsed = datetime.datetime.fromisoformat(body["starts_at"])
    assert parsed.utcoffset() is not None
    assert parsed == at(2, 9)
    assert Session.objects.get(pk=session.pk).starts_at == parsed


@pytest.mark.django_db
def test_a_booking_the_constraint_refuses_is_told_which_resource(
    front_desk, provider, series, make_patient, make_series, at, monkeypatch
):
    """The insert has no savepoint of its own: when the exclusion constraint refuses it (a
    concurrent booking got there between the check and the insert, as if the check had not
    seen it), the booking rolls back whole and the check, run again, names the provider."""
    from scheduling.errors import ProviderUnavailable

    services.book_session(actor=front_desk, series=series, provider=provider, starts_at=at(3))
    other = make_series(patient=make_patient())
    real = booking._check_booking
    monkeypatch.setattr(booking, "_check_booking", lambda session, series, new: None)
    with pytest.raises(ProviderUnavailable):
        services.book_session(actor=front_desk, series=other, provider=provider, starts_at=at(3))
    monkeypatch.setattr(booking, "_check_booking", real)
    assert Session.objects.filter(series=other).count() == 0
    assert AuditEvent.objects.filter(action="session.book").count() == 1


@pytest.mark.django_db
def test_a_booking_aborted_by_a_deadlock_is_tried_again_whole(
    front_desk, provider, series, at, monkeypatch
):
    from django.db import OperationalError
    from psycopg.errors import DeadlockDetected

    save, tries = Session.save, []

    def deadlocked_once(self, *args, **kwargs):
        tries.append(self.pk)
        if len(tries) == 1:
            try:
                raise DeadlockDetected("deadlock detected")
            except DeadlockDetected as cause:
                raise OperationalError("deadlock detected") from cause
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Session, "save", deadlocked_once)
    session = services.book_session(
        actor=front_desk, series=series, provider=provider, starts_at=at(3)
    )
    assert len(tries) == 2
    assert list(Session.objects.filter(series=series).values_list("id", flat=True)) == [session.pk]
    assert AuditEvent.objects.filter(action="session.book").count() == 1
