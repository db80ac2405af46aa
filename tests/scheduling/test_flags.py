"""Session.flags is a cache of eligibility on each session's local date: every service that
changes one of its inputs refreshes it in its own transaction, without waiting for the scan."""

from datetime import timedelta

import pytest

from clinic.models import AuditEvent
from patients.rules import add_years
from scheduling.models import Session
from tests.factories import SessionFactory


def flags_of(session_id):
    return Session.objects.get(pk=session_id).flags


@pytest.mark.django_db
def test_a_corrected_date_of_birth_refreshes_the_flags(
    front_desk, provider, api, patient, series, at
):
    session = SessionFactory(series=series, provider=provider, starts_at=at(60))
    done = SessionFactory(series=series, provider=provider, starts_at=at(-30), status="completed")
    client = api(front_desk)

    # Corrected: the patient turns 22 only after the session.
    too_young = add_years(at(61).date(), -22)
    response = client.patch(
        f"/api/v1/patients/{patient.id}/", {"date_of_birth": too_young.isoformat()}
    )
    assert response.status_code == 200
    assert flags_of(session.id) == ["not_eligible"]
    assert flags_of(done.id) == []  # only sessions still to come carry flags

    # Corrected again, to the day the patient turns 22 on the session date.
    just_old_enough = add_years(at(60).date(), -22)
    client.patch(f"/api/v1/patients/{patient.id}/", {"date_of_birth": just_old_enough.isoformat()})
    assert flags_of(session.id) == []
    assert AuditEvent.objects.filter(action="session.flags", object_id=session.id).count() == 2


@pytest.mark.django_db
def test_a_patient_edit_that_leaves_the_date_of_birth_alone_refreshes_nothing(
    front_desk, provider, api, patient, series, at
):
    session = SessionFactory(series=series, provider=provider, starts_at=at(60))
    Session.objects.filter(pk=session.pk).update(flags=["not_eligible"])  # stale on purpose
    client = api(front_desk)
    client.patch(f"/api/v1/patients/{patient.id}/", {"first_name": "Jo"})
    client.patch(
        f"/api/v1/patients/{patient.id}/", {"date_of_birth": patient.date_of_birth.isoformat()}
    )
    assert flags_of(session.id) == ["not_eligible"]  # left to the scan


@pytest.mark.django_db
def test_moving_the_clinics_time_zone_refreshes_the_flags(
    admin, provider, api, clinic, series, at, make_patient
):
    """The screening (today, New York) holds to day 90. 23:30 on day 90 in New York is
    already day 91 in Tokyo: the same instant falls after the screening has lapsed."""
    late_on_the_last_valid_day = SessionFactory(
        series=series, provider=provider, starts_at=at(90, 23, 30)
    )
    other = SessionFactory(
        series__patient=make_patient(),
        provider=provider,
        starts_at=at(90, 23, 30) + timedelta(hours=2),
    )
    assert flags_of(late_on_the_last_valid_day.id) == []
    client = api(admin)

    assert client.patch("/api/v1/clinic/", {"timezone": "Asia/Tokyo"}).status_code == 200
    assert flags_of(late_on_the_last_valid_day.id) == ["screening_expired"]
    assert flags_of(other.id) == ["screening_expired"]

    assert client.patch("/api/v1/clinic/", {"timezone": "America/New_York"}).status_code == 200
    assert flags_of(late_on_the_last_valid_day.id) == []


@pytest.mark.django_db
def test_settings_that_are_no_input_of_the_flags_refresh_nothing(admin, provider, api, series, at):
    """Screening validity and washout are frozen into each screening when it is taken."""
    session = SessionFactory(series=series, provider=provider, starts_at=at(60))
    Session.objects.filter(pk=session.pk).update(flags=["not_eligible"])  # stale on purpose
    response = api(admin).patch(
        "/api/v1/clinic/", {"screening_valid_days": 30, "isotretinoin_washout_months": 12}
    )
    assert response.status_code == 200
    assert flags_of(session.id) == ["not_eligible"]  # left to the scan
