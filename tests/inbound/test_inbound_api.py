"""GET /api/v1/inbound-messages/: the clinic's replies for the front desk and admins, audited
as patient data, filterable, with a pinned query count."""

from datetime import UTC, datetime

import pytest

from clinic.models import AuditEvent
from scheduling.notifications.models import InboundMessage
from tests.factories import ClinicFactory, PatientFactory
from tests.factories.scheduling import SessionFactory

URL = "/api/v1/inbound-messages/"
T = datetime(2026, 3, 2, 15, tzinfo=UTC)


def make(clinic, n=1, **kwargs):
    rows = []
    for i in range(n):
        patient = kwargs.get("patient") or PatientFactory(clinic=clinic)
        rows.append(
            InboundMessage.objects.create(
                clinic=clinic,
                patient=patient,
                session=kwargs.get("session"),
                message_id=f"m-{clinic.id}-{i}-{kwargs.get('action', 'none')}",
                sender=patient.phone,
                body=kwargs.get("body", "Hello?"),
                action=kwargs.get("action", "none"),
                received_at=kwargs.get("received_at", T),
            )
        )
    return rows


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "status"), [("admin", 200), ("front_desk", 200), ("provider", 403), ("auditor", 403)]
)
def test_front_desk_and_admins_read_the_clinics_replies(api, staff_by_role, clinic, role, status):
    patient = PatientFactory(clinic=clinic)
    session = SessionFactory(series__patient=patient)
    (mine,) = make(clinic, patient=patient, session=session, action="confirmed", body=" C ")
    make(ClinicFactory())  # another clinic's
    InboundMessage.objects.create(
        message_id="unknown", sender="+442079460123", body="C", action="none", received_at=T
    )  # no clinic: the back office's

    response = api(staff_by_role[role]).get(URL)

    assert response.status_code == status
    if status == 200:
        assert response.json() == {
            "results": [
                {
                    "id": str(mine.id),
                    "patient": str(patient.id),
                    "from": patient.phone,
                    "body": " C ",
                    "received_at": "2026-03-02T15:00:00Z",
                    "action": "confirmed",
                    "session": str(session.id),
                }
            ],
            "next": None,
            "previous": None,
        }
        event = AuditEvent.objects.get(action="inbound_message.list")
        assert (event.object_id, event.patient_id) == (str(mine.id), patient.id)


@pytest.mark.django_db
def test_filters_and_writes(api, front_desk, clinic):
    (confirmed,) = make(clinic, action="confirmed")
    (other,) = make(clinic, action="opted_out")
    client = api(front_desk)

    ids = [m["id"] for m in client.get(f"{URL}?action=opted_out").json()["results"]]
    assert ids == [str(other.id)]
    by_patient = client.get(f"{URL}?patient={confirmed.patient_id}").json()["results"]
    assert [m["id"] for m in by_patient] == [str(confirmed.id)]
    assert client.get(f"{URL}{other.id}/").json()["action"] == "opted_out"
    assert client.post(URL, {}).status_code == 405
