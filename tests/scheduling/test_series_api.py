"""Series over HTTP: planning, derived progress, cancel, roles, isolation, audit, query counts."""

from datetime import timedelta

import pytest
from django.utils import timezone

from clinic.models import AuditEvent, Role
from scheduling.models import Series, Session
from tests.factories import SeriesFactory, SessionFactory


def new_series(who, **changes):
    return {
        "patient": str(who.id),
        "indication": "acne_scars",
        "planned_sessions": 3,
        **changes,
    }


@pytest.mark.django_db
def test_plan_a_series_with_the_clinic_default_interval(front_desk, api, patient):
    response = api(front_desk).post("/api/v1/series/", new_series(patient))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body == {
        "id": body["id"],
        "patient": str(patient.id),
        "indication": "acne_scars",
        "planned_sessions": 3,
        "interval_days": 30,
        "status": "active",
        "sessions_completed": 0,
        "sessions_booked": 0,
        # Nothing booked yet: the first session is due from the day the series is planned.
        "next_due_on": timezone.localdate(timezone=front_desk.clinic.zone).isoformat(),
    }
    event = AuditEvent.objects.get(action="series.create")
    assert (str(event.object_id), event.patient_id) == (body["id"], patient.id)


@pytest.mark.django_db
def test_interval_may_be_given_but_not_below_the_clinic_minimum(front_desk, api, patient):
    client = api(front_desk)
    response = client.post("/api/v1/series/", new_series(patient, interval_days=21))
    assert (response.status_code, response.json()["interval_days"]) == (201, 21)
    response = client.post("/api/v1/series/", new_series(patient, interval_days=20))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert list(response.json()["errors"]) == ["interval_days"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"planned_sessions": 2}, "planned_sessions"),
        ({"planned_sessions": 7}, "planned_sessions"),
        ({"indication": "forehead"}, "indication"),
        ({"patient": "not-a-uuid"}, "patient"),
        ({"interval_days": 0}, "interval_days"),
    ],
)
def test_bad_series_fields_are_400(front_desk, api, patient, change, field):
    response = api(front_desk).post("/api/v1/series/", new_series(patient, **change))
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert list(response.json()["errors"]) == [field]
    assert not Series.objects.exists()


@pytest.mark.django_db
def test_planned_sessions_range_is_a_database_constraint_too(patient, front_desk):
    from django.db import IntegrityError

    with pytest.raises(IntegrityError, match="scheduling_series_planned_sessions_range"):
        SeriesFactory(patient=patient, created_by=front_desk, planned_sessions=7)


@pytest.mark.django_db
def test_an_archived_patient_gets_no_series(front_desk, api, patient):
    patient.archived_at = timezone.now()
    patient.save()
    response = api(front_desk).post("/api/v1/series/", new_series(patient))
    assert (response.status_code, response.json()["code"]) == (409, "invalid_state")


@pytest.mark.django_db
def test_progress_is_derived_from_the_sessions(front_desk, api, series, at):
    client = api(front_desk)
    first = SessionFactory(series=series, starts_at=at(1), status="completed")
    SessionFactory(series=series, starts_at=at(31), status="booked")
    SessionFactory(series=series, starts_at=at(45), status="cancelled")
    body = client.get(f"/api/v1/series/{series.id}/").json()
    assert (body["sessions_completed"], body["sessions_booked"]) == (1, 1)
    # One interval after the latest booked session (local day 31): the third is due day 61.
    assert body["next_due_on"] == at(61).date().isoformat()

    SessionFactory(series=series, starts_at=at(61), status="checked_in")
    body = client.get(f"/api/v1/series/{series.id}/").json()
    assert (body["sessions_completed"], body["sessions_booked"], body["next_due_on"]) == (
        1,
        2,
        None,
    )

    Session.objects.filter(pk=first.pk).update(status="no_show")
    body = client.get(f"/api/v1/series/{series.id}/").json()
    assert (body["sessions_completed"], body["sessions_booked"]) == (0, 2)
    assert body["next_due_on"] == at(91).date().isoformat()


@pytest.mark.django_db
def test_list_filters_by_patient_and_status(front_desk, api, series, make_series, make_patient):
    other = make_series(patient=make_patient())
    cancelled = make_series(status="cancelled")
    SeriesFactory()  # another clinic
    client = api(front_desk)

    def ids(**params):
        return {row["id"] for row in client.get("/api/v1/series/", params).json()["results"]}

    assert ids() == {str(series.id), str(other.id), str(cancelled.id)}
    assert ids(patient=str(series.patient_id)) == {str(series.id), str(cancelled.id)}
    assert ids(patient=str(series.patient_id), status="active") == {str(series.id)}
    assert client.get("/api/v1/series/", {"patient": "nope"}).json()["code"] == "invalid"


@pytest.mark.django_db
def test_cancel_cancels_the_series_and_only_its_future_open_sessions(front_desk, api, series, at):
    past = SessionFactory(series=series, starts_at=timezone.now() - timedelta(days=40))
    done = SessionFactory(
        series=series, starts_at=timezone.now() - timedelta(days=70), status="completed"
    )
    upcoming = SessionFactory(series=series, starts_at=at(3), flags=["screening_expired"])
    checked_in = SessionFactory(series=series, starts_at=at(40), status="checked_in")

    client = api(front_desk)
    response = client.post(f"/api/v1/series/{series.id}/cancel/", {"reason": "Moving away"})
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["next_due_on"]) == ("cancelled", None)
    statuses = dict(Session.objects.values_list("id", "status"))
    assert statuses == {
        past.id: "booked",
        done.id: "completed",
        upcoming.id: "cancelled",
        checked_in.id: "cancelled",
    }
    upcoming.refresh_from_db()
    assert (upcoming.cancel_reason, upcoming.flags) == ("Moving away", [])
    assert AuditEvent.objects.filter(action="session.cancel").count() == 2
    assert AuditEvent.objects.filter(action="series.cancel").count() == 1

    again = client.post(f"/api/v1/series/{series.id}/cancel/")
    assert (again.status_code, again.json()["code"]) == (409, "invalid_state")


@pytest.mark.django_db
def test_another_clinics_series_is_404(front_desk, api):
    theirs = SeriesFactory()
    client = api(front_desk)
    assert client.get(f"/api/v1/series/{theirs.id}/").status_code == 404
    assert client.post(f"/api/v1/series/{theirs.id}/cancel/").status_code == 404
    response = client.post("/api/v1/series/", new_series(theirs.patient))
    assert response.json()["errors"] == {"patient": ["No such object in your clinic."]}


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.ADMIN, Role.FRONT_DESK, Role.PROVIDER, Role.AUDITOR])
def test_roles(staff_by_role, api, make_patient, role):
    user = staff_by_role[role]
    client = api(user)
    patient = make_patient()
    series = SeriesFactory(patient=patient, created_by=user)
    writes = [
        client.post("/api/v1/series/", new_series(patient)),
        client.post(f"/api/v1/series/{series.id}/cancel/"),
    ]
    reads = [client.get("/api/v1/series/"), client.get(f"/api/v1/series/{series.id}/")]
    assert [r.status_code for r in reads] == [200, 200]
    if role == Role.AUDITOR:
        assert [r.status_code for r in writes] == [403, 403]
        denied = AuditEvent.objects.filter(outcome="denied")
        assert sorted(denied.values_list("action", flat=True)) == ["series.cancel", "series.create"]
    else:
        assert [r.status_code for r in writes] == [201, 200]


@pytest.mark.django_db
def test_reads_are_audited_per_series(front_desk, api, make_series, make_patient):
    series = [make_series(patient=make_patient()) for _ in range(3)]
    client = api(front_desk)
    client.get("/api/v1/series/")
    client.get(f"/api/v1/series/{series[0].id}/")
    listed = AuditEvent.objects.filter(action="series.list")
    assert {(e.object_id, e.patient_id) for e in listed} == {
        (str(s.id), s.patient_id) for s in series
    }
    assert AuditEvent.objects.get(action="series.read").patient_id == series[0].patient_id
