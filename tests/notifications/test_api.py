"""GET /api/v1/notifications/: the outbox, read-only, scoped to the clinic, filterable."""

from datetime import UTC, datetime

import pytest

from clinic.models import AuditEvent
from scheduling.notifications.models import Notification
from tests.factories import PatientFactory
from tests.factories.notifications import NotificationFactory

URL = "/api/v1/notifications/"
T = datetime(2026, 3, 2, 15, tzinfo=UTC)


def body_of(n: Notification) -> dict:
    return {
        "id": str(n.id),
        "patient": str(n.patient_id),
        "session": str(n.session_id) if n.session_id else None,
        "kind": n.kind,
        "channel": n.channel,
        "status": n.status if n.status != "sending" else "pending",
        "scheduled_for": n.scheduled_for.isoformat().replace("+00:00", "Z"),
        "sent_at": n.sent_at.isoformat().replace("+00:00", "Z") if n.sent_at else None,
    }


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["admin", "front_desk", "provider", "auditor"])
def test_every_role_reads_the_clinics_notifications(
    api, staff_by_role, role, recipient, make_booked_session
):
    session = make_booked_session(datetime(2026, 3, 9, 13, tzinfo=UTC))
    sent = NotificationFactory(
        patient=recipient,
        session=session,
        kind="session_reminder",
        subject_key=f"{session.id}@x",
        status="sent",
        scheduled_for=T,
        sent_at=datetime(2026, 3, 2, 15, 0, 3, tzinfo=UTC),
    )
    NotificationFactory(patient=PatientFactory())  # another clinic's

    response = api(staff_by_role[role]).get(URL)

    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {
                "id": str(sent.id),
                "patient": str(recipient.id),
                "session": str(session.id),
                "kind": "session_reminder",
                "channel": "email",
                "status": "sent",
                "scheduled_for": "2026-03-02T15:00:00Z",
                "sent_at": "2026-03-02T15:00:03Z",
            }
        ],
        "next": None,
        "previous": None,
    }
    event = AuditEvent.objects.get(action="notification.list")
    assert (event.object_id, event.patient_id) == (str(sent.id), recipient.id)


@pytest.mark.django_db
def test_filters(api, front_desk, recipient, make_recipient, make_booked_session):
    other = make_recipient()
    session = make_booked_session(datetime(2026, 3, 9, 13, tzinfo=UTC))
    a = NotificationFactory(
        patient=recipient, session=session, kind="session_reminder", scheduled_for=T
    )
    b = NotificationFactory(
        patient=recipient, channel="sms", status="sending", claimed_at=T, scheduled_for=T
    )
    c = NotificationFactory(patient=other, status="failed", scheduled_for=T)
    d = NotificationFactory(patient=other, status="skipped", channel="sms", scheduled_for=T)
    client = api(front_desk)

    def ids(query):
        response = client.get(URL, query)
        assert response.status_code == 200, response.content
        return sorted(item["id"] for item in response.json()["results"])

    def expect(*rows):
        return sorted(str(n.id) for n in rows)

    assert ids({"patient": str(recipient.id)}) == expect(a, b)
    assert ids({"session": str(session.id)}) == expect(a)
    assert ids({"kind": "session_reminder"}) == expect(a)
    assert ids({"kind": "lot_recall", "patient": str(other.id)}) == expect(c, d)
    assert ids({"status": "pending"}) == expect(a, b)  # a row mid-send is still pending
    assert ids({"status": "failed"}) == expect(c)
    assert ids({"status": "skipped"}) == expect(d)
    assert ids({"channel": "sms"}) == expect(b, d)
    assert client.get(URL, {"status": "sending"}).status_code == 400
    assert client.get(URL, {"kind": "spam"}).json()["code"] == "invalid"
    assert client.get(URL, {"patient": "not-a-uuid"}).status_code == 400
    b.refresh_from_db()
    assert client.get(f"{URL}{b.id}/").json() == body_of(b)


@pytest.mark.django_db
def test_another_clinics_notification_is_not_found(api, admin):
    theirs = NotificationFactory(patient=PatientFactory())
    response = api(admin).get(f"{URL}{theirs.id}/")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_read_only(api, admin, auditor, recipient, method):
    row = NotificationFactory(patient=recipient)
    client = api(admin)
    path = URL if method == "post" else f"{URL}{row.id}/"
    response = getattr(client, method)(path, {})
    assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed")
    # Auditors never write, whatever the view: refused before the method is considered.
    response = getattr(api(auditor), method)(path, {})
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert Notification.objects.count() == 1


@pytest.mark.django_db
def test_unauthenticated(api):
    assert api().get(URL).status_code == 401
