import pytest

from clinic.models import AuditEvent, Role
from scheduling.notifications.models import Notification
from tests.factories import PatientFactory, ScreeningFactory
from tests.treatments.conftest import treatment_body


def treat(client, session, lot):
    response = client.post(f"/api/v1/sessions/{session.id}/treatment/", treatment_body(lot))
    assert response.status_code == 201, response.content


@pytest.mark.django_db
def test_recall_names_every_patient_treated_with_the_lot(
    admin, provider, clinic, make_session, lot, api, front_desk
):
    ana = PatientFactory(clinic=clinic, first_name="Ana", last_name="Avila", sms_opt_in=False)
    ben = PatientFactory(clinic=clinic, first_name="Ben", last_name="Burke")
    for patient in (ana, ben):
        ScreeningFactory(patient=patient, screened_by=front_desk)
    ana_1, ana_2, ben_1 = make_session(ana), make_session(ana), make_session(ben)
    untouched = make_session(PatientFactory(clinic=clinic))
    ScreeningFactory(patient=untouched.patient, screened_by=front_desk)
    client = api(provider)
    for session in (ana_1, ana_2, ben_1):
        treat(client, session, lot)

    response = api(admin).post(f"/api/v1/tip-lots/{lot.id}/recall/", {"reason": "Sterility"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "lot_number": lot.lot_number,
        "recalled_at": body["recalled_at"],
        "affected_sessions": 3,
        "affected_patients": [
            {
                "id": str(ana.id),
                "first_name": "Ana",
                "last_name": "Avila",
                "email": ana.email,
                "phone": ana.phone,
                "sessions": body["affected_patients"][0]["sessions"],
            },
            {
                "id": str(ben.id),
                "first_name": "Ben",
                "last_name": "Burke",
                "email": ben.email,
                "phone": ben.phone,
                "sessions": [str(ben_1.id)],
            },
        ],
    }
    assert sorted(body["affected_patients"][0]["sessions"]) == sorted(
        [str(ana_1.id), str(ana_2.id)]
    )
    notes = Notification.objects.filter(kind="lot_recall").order_by("patient__last_name", "channel")
    assert [(n.patient_id, n.channel, n.status) for n in notes] == [
        (ana.id, "email", notes[0].status),
        (ana.id, "sms", "skipped"),
        (ben.id, "email", notes[2].status),
        (ben.id, "sms", notes[3].status),
    ]
    assert all(n.status != "skipped" for n in (notes[0], notes[2], notes[3]))
    assert AuditEvent.objects.filter(action="tip_lot.recall").count() == 1
    lot_status = api(admin).get(f"/api/v1/tip-lots/{lot.id}/").json()["status"]
    assert lot_status == "recalled"


@pytest.mark.django_db
def test_a_recalled_lot_is_refused_and_cannot_be_recalled_twice(
    admin, provider, make_session, lot, api
):
    api(admin).post(f"/api/v1/tip-lots/{lot.id}/recall/", {"reason": "Sterility"})
    response = api(provider).post(
        f"/api/v1/sessions/{make_session().id}/treatment/", treatment_body(lot)
    )
    assert response.json()["code"] == "tip_lot_recalled"
    again = api(admin).post(f"/api/v1/tip-lots/{lot.id}/recall/", {"reason": "Again"})
    assert (again.status_code, again.json()["code"]) == (409, "invalid_state")


@pytest.mark.django_db
def test_recall_needs_a_reason(admin, lot, api):
    response = api(admin).post(f"/api/v1/tip-lots/{lot.id}/recall/", {"reason": ""})
    assert (response.status_code, list(response.json()["errors"])) == (400, ["reason"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "status"),
    [(Role.ADMIN, 200), (Role.PROVIDER, 403), (Role.FRONT_DESK, 403), (Role.AUDITOR, 403)],
)
def test_only_admins_recall(staff_by_role, lot, api, role, status):
    response = api(staff_by_role[role]).post(
        f"/api/v1/tip-lots/{lot.id}/recall/", {"reason": "Sterility"}
    )
    assert response.status_code == status


@pytest.mark.django_db
def test_recall_replayed_with_the_same_key_notifies_once(admin, provider, make_session, lot, api):
    treat(api(provider), make_session(), lot)
    client = api(admin)
    first = client.post(
        f"/api/v1/tip-lots/{lot.id}/recall/", {"reason": "Sterility"}, HTTP_IDEMPOTENCY_KEY="r1"
    )
    again = client.post(
        f"/api/v1/tip-lots/{lot.id}/recall/", {"reason": "Sterility"}, HTTP_IDEMPOTENCY_KEY="r1"
    )
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json() == again.json()
    assert Notification.objects.filter(kind="lot_recall").count() == 2
