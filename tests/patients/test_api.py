"""Patients and screenings over HTTP: shape, rules, roles, isolation, audit, query counts."""

import datetime
from datetime import date, timedelta

import pytest
import time_machine
from django.utils import timezone

from clinic.models import AuditEvent, Role
from patients.models import Patient
from tests.factories import PatientFactory, ScreeningFactory

NEW_PATIENT = {
    "first_name": "Jane",
    "last_name": "Doe",
    "date_of_birth": "1990-05-17",
    "email": "jane@example.com",
    "phone": "(202) 555-0143",
    "fitzpatrick_type": 3,
    "sms_opt_in": True,
    "email_opt_in": False,
}


@pytest.mark.django_db
def test_register_patient_returns_the_record_with_a_normalised_phone(front_desk, api):
    response = api(front_desk).post("/api/v1/patients/", NEW_PATIENT)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body == {
        **NEW_PATIENT,
        "phone": "+12025550143",
        "id": body["id"],
        "archived": False,
        "archived_at": None,
        "created_at": body["created_at"],
    }
    event = AuditEvent.objects.get(action="patient.create")
    assert (str(event.patient_id), event.actor_id) == (body["id"], front_desk.id)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"fitzpatrick_type": 7}, "fitzpatrick_type"),
        ({"fitzpatrick_type": 0}, "fitzpatrick_type"),
        ({"email": "not-an-email"}, "email"),
        ({"phone": "12"}, "phone"),
        ({"phone": "", "sms_opt_in": True}, "sms_opt_in"),
        ({"email": "", "email_opt_in": True}, "email_opt_in"),
        ({"date_of_birth": "2999-01-01"}, "date_of_birth"),
        ({"date_of_birth": "17/05/1990"}, "date_of_birth"),
        ({"date_of_birth": "19900517"}, "date_of_birth"),
        ({"date_of_birth": "1990-5-17"}, "date_of_birth"),
        ({"date_of_birth": "0001-01-01"}, "date_of_birth"),
        ({"date_of_birth": "1990-05-17T00:00:00Z"}, "date_of_birth"),
        ({"first_name": ""}, "first_name"),
    ],
)
def test_bad_patient_fields_are_400_with_the_field_named(front_desk, api, change, field):
    response = api(front_desk).post("/api/v1/patients/", {**NEW_PATIENT, **change})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert list(response.json()["errors"]) == [field]
    assert not Patient.objects.exists()


@pytest.mark.django_db
def test_patch_patient(front_desk, api):
    patient = PatientFactory(clinic=front_desk.clinic)
    response = api(front_desk).patch(
        f"/api/v1/patients/{patient.id}/", {"last_name": "Smith", "phone": "+44 20 7946 0958"}
    )
    assert response.status_code == 200
    assert (response.json()["last_name"], response.json()["phone"]) == ("Smith", "+442079460958")


@pytest.mark.django_db
def test_delete_and_put_are_405_and_archive_hides_from_lists(front_desk, api):
    patient = PatientFactory(clinic=front_desk.clinic)
    client = api(front_desk)
    url = f"/api/v1/patients/{patient.id}/"
    assert client.delete(url).json()["code"] == "method_not_allowed"
    assert client.put(url, NEW_PATIENT).status_code == 405

    response = client.post(f"{url}archive/")
    assert response.status_code == 200
    assert response.json()["archived"] is True
    assert client.get("/api/v1/patients/").json()["results"] == []
    archived = client.get("/api/v1/patients/?archived=true").json()["results"]
    assert [row["id"] for row in archived] == [str(patient.id)]
    assert client.get(url).status_code == 200  # the record is kept
    assert client.post(f"{url}archive/").json()["code"] == "invalid_state"
    assert Patient.objects.filter(pk=patient.pk).exists()


@pytest.mark.django_db
def test_search_matches_name_email_or_phone(front_desk, api):
    jane = PatientFactory(
        clinic=front_desk.clinic,
        first_name="Jane",
        last_name="Doe",
        email="jd@example.com",
        phone="+12025550143",
    )
    john = PatientFactory(
        clinic=front_desk.clinic,
        first_name="John",
        last_name="Smith",
        email="smithy@example.org",
        phone="+12025550999",
    )
    PatientFactory(first_name="Jane", last_name="Doe")  # another clinic
    client = api(front_desk)

    def ids(term):
        results = client.get("/api/v1/patients/", {"search": term}).json()["results"]
        return {row["id"] for row in results}

    assert ids("jane") == {str(jane.id)}
    assert ids("DOE") == {str(jane.id)}
    assert ids("jane doe") == {str(jane.id)}
    assert ids("example.org") == {str(john.id)}
    assert ids("555-0999") == {str(john.id)}
    assert ids("202-5550") == {str(jane.id), str(john.id)}
    assert ids("nobody") == set()


@pytest.mark.django_db
def test_reads_of_patient_data_are_audited(front_desk, api):
    patients = PatientFactory.create_batch(3, clinic=front_desk.clinic)
    client = api(front_desk)
    client.get("/api/v1/patients/")
    client.get(f"/api/v1/patients/{patients[0].id}/")
    client.get(f"/api/v1/patients/{patients[0].id}/screenings/")
    client.get(f"/api/v1/patients/{patients[0].id}/eligibility/")

    listed = AuditEvent.objects.filter(action="patient.list")
    assert {e.patient_id for e in listed} == {p.id for p in patients}
    assert AuditEvent.objects.get(action="patient.read").patient_id == patients[0].id
    assert AuditEvent.objects.get(action="patient.eligibility").patient_id == patients[0].id
    assert all(e.actor_id == front_desk.id and e.request_id for e in AuditEvent.objects.all())


@pytest.mark.django_db
def test_another_clinics_patient_is_404_everywhere(front_desk, other_clinic, api):
    theirs = PatientFactory(clinic=other_clinic)
    client = api(front_desk)
    for path in ("", "screenings/", "eligibility/"):
        response = client.get(f"/api/v1/patients/{theirs.id}/{path}")
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert client.patch(f"/api/v1/patients/{theirs.id}/", {"last_name": "X"}).status_code == 404
    assert client.post(f"/api/v1/patients/{theirs.id}/screenings/", {}).status_code == 404
    assert client.post(f"/api/v1/patients/{theirs.id}/archive/").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.ADMIN, Role.FRONT_DESK, Role.PROVIDER, Role.AUDITOR])
def test_roles(staff_by_role, api, role):
    client = api(staff_by_role[role])
    patient = PatientFactory(clinic=staff_by_role[role].clinic)
    writes = [
        client.post("/api/v1/patients/", NEW_PATIENT),
        client.patch(f"/api/v1/patients/{patient.id}/", {"last_name": "X"}),
        client.post(f"/api/v1/patients/{patient.id}/screenings/", {}),
        client.post(f"/api/v1/patients/{patient.id}/archive/"),
    ]
    reads = [
        client.get("/api/v1/patients/"),
        client.get(f"/api/v1/patients/{patient.id}/"),
        client.get(f"/api/v1/patients/{patient.id}/screenings/"),
        client.get(f"/api/v1/patients/{patient.id}/eligibility/"),
    ]
    assert [r.status_code for r in reads] == [200, 200, 200, 200]
    if role == Role.AUDITOR:
        assert [r.status_code for r in writes] == [403, 403, 403, 403]
        assert AuditEvent.objects.filter(outcome="denied").count() == 4
    else:
        assert [r.status_code for r in writes] == [201, 200, 201, 200]


@pytest.mark.django_db
def test_screening_result_is_computed_and_stored(front_desk, api):
    clinic = front_desk.clinic
    patient = PatientFactory(clinic=clinic, date_of_birth=date(1990, 1, 1))
    with time_machine.travel(timezone.datetime(2026, 3, 10, 15, tzinfo=datetime.UTC)):
        response = api(front_desk).post(
            f"/api/v1/patients/{patient.id}/screenings/",
            {"keloid_history": True, "isotretinoin_last_dose_on": "2026-01-20"},
        )
    assert response.status_code == 201
    body = response.json()
    assert body["screened_at"].startswith("2026-03-10T15:00:00")
    assert {k: body[k] for k in ("eligible", "contraindications", "warnings")} == {
        "eligible": False,
        # v1.1: the washout is listed while it runs on the screening day ...
        "contraindications": ["isotretinoin_washout"],
        "warnings": ["keloid_history"],
    }
    # ... and eligible_from is still the day it ends.
    assert (body["valid_until"], body["eligible_from"]) == ("2026-06-08", "2026-07-20")
    # The listed washout blocks only while it runs: from its end, only the expiry is left.
    client = api(front_desk)
    path = f"/api/v1/patients/{patient.id}/eligibility/"
    with time_machine.travel(timezone.datetime(2026, 3, 10, 15, tzinfo=datetime.UTC)):
        assert [
            client.get(path, {"on": day}).json()["reasons"]
            for day in ("2026-06-01", "2026-07-19", "2026-07-20")
        ] == [
            ["isotretinoin_washout"],
            ["screening_expired", "isotretinoin_washout"],
            ["screening_expired"],
        ]

    # A later change of the clinic's settings never rewrites a recorded screening.
    clinic.screening_valid_days = 30
    clinic.save()
    listed = api(front_desk).get(f"/api/v1/patients/{patient.id}/screenings/").json()["results"]
    assert [(s["id"], s["valid_until"]) for s in listed] == [(body["id"], "2026-06-08")]


@pytest.mark.django_db
def test_contraindicated_screening(front_desk, api):
    patient = PatientFactory(clinic=front_desk.clinic)
    body = (
        api(front_desk)
        .post(
            f"/api/v1/patients/{patient.id}/screenings/",
            {"pregnant_or_nursing": True, "active_skin_infection": True, "diabetes": True},
        )
        .json()
    )
    assert (
        body["eligible"],
        body["contraindications"],
        body["warnings"],
        body["eligible_from"],
    ) == (
        False,
        ["pregnant_or_nursing", "active_skin_infection"],
        ["diabetes"],
        None,
    )


@pytest.mark.django_db
def test_screening_rejects_bad_answers(front_desk, api):
    patient = PatientFactory(clinic=front_desk.clinic)
    client = api(front_desk)
    url = f"/api/v1/patients/{patient.id}/screenings/"
    future = (timezone.localdate() + timedelta(days=3)).isoformat()
    assert client.post(url, {"isotretinoin_last_dose_on": future}).json()["errors"] == {
        "isotretinoin_last_dose_on": ["Must not be in the future."]
    }
    assert list(client.post(url, {"diabetes": "maybe"}).json()["errors"]) == ["diabetes"]


@pytest.mark.django_db
def test_screenings_are_listed_newest_first(front_desk, api):
    patient = PatientFactory(clinic=front_desk.clinic)
    old = ScreeningFactory(patient=patient, screened_at=timezone.now() - timedelta(days=5))
    new = ScreeningFactory(patient=patient)
    listed = api(front_desk).get(f"/api/v1/patients/{patient.id}/screenings/").json()["results"]
    assert [s["id"] for s in listed] == [str(new.id), str(old.id)]


@pytest.mark.django_db
def test_eligibility_endpoint(front_desk, api):
    patient = PatientFactory(clinic=front_desk.clinic, date_of_birth=date(2004, 7, 1))
    client = api(front_desk)
    url = f"/api/v1/patients/{patient.id}/eligibility/"
    assert client.get(url).json() == {
        "eligible": False,
        "reasons": ["no_screening"],
        "valid_until": None,
        "eligible_from": None,
    }
    screening = ScreeningFactory(patient=patient, screened_on=date(2026, 6, 1))
    assert client.get(url, {"on": "2026-06-30"}).json() == {
        "eligible": False,
        "reasons": ["under_minimum_age"],
        "valid_until": screening.valid_until.isoformat(),
        "eligible_from": "2026-07-01",
    }
    assert client.get(url, {"on": "2026-07-01"}).json()["eligible"] is True
    assert client.get(url, {"on": "2026-13-01"}).json()["code"] == "invalid"


@pytest.mark.django_db
def test_eligibility_date_must_be_iso(front_desk, api):
    patient = PatientFactory(clinic=front_desk.clinic)
    url = f"/api/v1/patients/{patient.id}/eligibility/"
    for bad in ("20260301", "2026-3-1", "03/01/2026"):
        assert api(front_desk).get(url, {"on": bad}).json()["code"] == "invalid"


@pytest.mark.django_db
@pytest.mark.parametrize("on", ["9999-12-31", "0001-01-01", "20260310", "2026-3-10"])
def test_eligibility_on_a_hostile_date_is_400(front_desk, api, on):
    patient = PatientFactory(clinic=front_desk.clinic)
    response = api(front_desk).get(f"/api/v1/patients/{patient.id}/eligibility/", {"on": on})
    assert response.status_code == 400, response.content
    assert (response.json()["code"], list(response.json()["errors"])) == ("invalid", ["on"])


@pytest.mark.django_db
@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "20250101", "2025-1-1"])
def test_a_hostile_isotretinoin_date_is_400(front_desk, api, day):
    patient = PatientFactory(clinic=front_desk.clinic)
    response = api(front_desk).post(
        f"/api/v1/patients/{patient.id}/screenings/", {"isotretinoin_last_dose_on": day}
    )
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert (response.json()["code"], list(errors)) == ("invalid", ["isotretinoin_last_dose_on"])
