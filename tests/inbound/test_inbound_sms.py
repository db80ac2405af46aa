"""POST /api/v1/inbound/sms/: signed by the provider, handled before the answer, once per
message id; C / YES confirm, R asks to reschedule, STOP opts out; unknown phones kept."""

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from clinic.models import AuditEvent
from scheduling.flags import refresh_flags
from scheduling.models import SessionStatus
from scheduling.notifications.models import InboundMessage
from tests.factories import ClinicFactory, PatientFactory, ScreeningFactory, SeriesFactory
from tests.factories.scheduling import SessionFactory

URL = "/api/v1/inbound/sms/"
SECRET = "inbound-test-secret"
PHONE = "+12025550143"


def signed(payload: dict, secret: str = SECRET) -> tuple[bytes, str]:
    raw = json.dumps(payload).encode()
    return raw, "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def post(payload: dict, *, signature: str | None = "sign", secret: str = SECRET):
    raw, good = signed(payload, secret)
    headers = (
        {}
        if signature is None
        else {"HTTP_X_SIGNATURE": good if signature == "sign" else signature}
    )
    return APIClient().post(URL, raw, content_type="application/json", **headers)


def reply(body: str, message_id: str = "m-1", sender: str = "(202) 555-0143"):
    return post({"message_id": message_id, "from": sender, "body": body})


@pytest.fixture(autouse=True)
def _secret():
    with override_settings(SMS_INBOUND_SECRET=SECRET):
        yield


@pytest.fixture
def patient(clinic, front_desk):
    patient = PatientFactory(clinic=clinic, phone=PHONE, sms_opt_in=True)
    ScreeningFactory(patient=patient, screened_by=front_desk, screened_on=clinic.today())
    return patient


@pytest.fixture
def sessions(patient, front_desk, provider):
    """The patient's booked sessions in 2 and 30 days, and one in the past still booked."""
    series = SeriesFactory(patient=patient, created_by=front_desk)
    made = {}
    for name, days in (("later", 30), ("next", 2), ("past", -25)):
        at = (timezone.now() + timedelta(days=days)).replace(microsecond=0)
        made[name] = SessionFactory(
            series=series, provider=provider, starts_at=at, ends_at=at + timedelta(hours=1)
        )
    return made


def accepted(response) -> bool:
    return (response.status_code, response.json()) == (200, {"status": "accepted"})


@pytest.mark.django_db
@pytest.mark.parametrize("body", ["C", " c ", "YES", "yes\n", "  Yes  "])
def test_c_or_yes_confirms_the_earliest_upcoming_booked_session(body, patient, sessions):
    assert accepted(reply(body))

    for name, session in sessions.items():
        session.refresh_from_db()
        assert (session.confirmed_at is not None) == (name == "next"), name
    message = InboundMessage.objects.get()
    assert (message.clinic_id, message.patient_id, message.session_id, message.action) == (
        patient.clinic_id,
        patient.id,
        sessions["next"].id,
        "confirmed",
    )
    assert (message.sender, message.body) == (PHONE, body)
    event = AuditEvent.objects.get(action="session.confirm")
    assert (event.object_id, event.patient_id, event.actor_label) == (
        str(sessions["next"].id),
        patient.id,
        "inbound_sms",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("body", ["R", " r", "r \t"])
def test_r_flags_the_session_and_the_flag_survives_a_refresh(
    body, api, front_desk, patient, sessions
):
    assert accepted(reply(body))

    nxt = sessions["next"]
    nxt.refresh_from_db()
    assert nxt.flags == ["reschedule_requested"]
    assert InboundMessage.objects.get().action == "reschedule_requested"
    # The eligibility refresh recomputes the other flags and keeps the request.
    refresh_flags(patient_id=patient.id)
    nxt.refresh_from_db()
    assert nxt.flags == ["reschedule_requested"]
    flagged = api(front_desk).get("/api/v1/sessions/?flagged=true").json()["results"]
    assert [(s["id"], s["flags"]) for s in flagged] == [(str(nxt.id), ["reschedule_requested"])]


@pytest.mark.django_db
def test_moving_the_session_answers_the_request_and_its_confirmation(
    api, front_desk, patient, sessions
):
    reply("C", "m-1")
    reply("R", "m-2")
    nxt = sessions["next"]
    starts_at = nxt.starts_at + timedelta(hours=2)

    response = api(front_desk).post(
        f"/api/v1/sessions/{nxt.id}/reschedule/", {"starts_at": starts_at.isoformat()}
    )

    assert response.status_code == 200, response.content
    assert (response.json()["flags"], response.json()["confirmed_at"]) == ([], None)


@pytest.mark.django_db
@pytest.mark.parametrize("body", ["STOP", "stop", " Stop \n"])
def test_stop_opts_the_patient_out_of_sms(body, patient):
    assert accepted(reply(body))

    patient.refresh_from_db()
    assert patient.sms_opt_in is False
    message = InboundMessage.objects.get()
    assert (message.action, message.patient_id, message.session_id) == (
        "opted_out",
        patient.id,
        None,
    )
    assert (
        AuditEvent.objects.filter(action="patient.sms_opt_out", patient_id=patient.id).count() == 1
    )


@pytest.mark.django_db
@pytest.mark.parametrize("body", ["Can I come at 3?", "CC", "", "C please", "NO"])
def test_anything_else_is_kept_and_changes_nothing(body, patient, sessions):
    assert accepted(reply(body))

    message = InboundMessage.objects.get()
    assert (message.action, message.patient_id, message.session_id, message.body) == (
        "none",
        patient.id,
        None,
        body,
    )
    patient.refresh_from_db()
    assert patient.sms_opt_in is True
    assert {s.confirmed_at for s in type(sessions["next"]).objects.all()} == {None}


@pytest.mark.django_db
def test_c_without_an_upcoming_booked_session_does_nothing(patient, sessions):
    type(sessions["next"]).objects.filter(starts_at__gt=timezone.now()).update(
        status=SessionStatus.CANCELLED
    )

    assert accepted(reply("C"))

    message = InboundMessage.objects.get()
    assert (message.action, message.patient_id, message.session_id) == ("none", patient.id, None)


@pytest.mark.django_db
def test_the_same_message_twice_has_one_effect(patient, sessions):
    assert accepted(reply("R", "twice"))
    nxt = sessions["next"]
    nxt.refresh_from_db()
    updated_at = nxt.updated_at

    assert accepted(reply("R", "twice"))
    assert accepted(reply("STOP", "twice"))  # a replay with another body is the same message

    assert InboundMessage.objects.count() == 1
    nxt.refresh_from_db()
    assert (nxt.flags, nxt.updated_at) == (["reschedule_requested"], updated_at)
    patient.refresh_from_db()
    assert patient.sms_opt_in is True
    assert AuditEvent.objects.filter(action="session.reschedule_request").count() == 1


@pytest.mark.django_db
def test_a_phone_shared_across_clinics_is_recorded_in_each(patient, sessions, front_desk):
    elsewhere = PatientFactory(clinic=ClinicFactory(), phone=PHONE)

    assert accepted(reply("STOP"))

    rows = {m.clinic_id: (m.patient_id, m.action) for m in InboundMessage.objects.all()}
    assert rows == {
        patient.clinic_id: (patient.id, "opted_out"),
        elsewhere.clinic_id: (elsewhere.id, "opted_out"),
    }
    elsewhere.refresh_from_db()
    assert elsewhere.sms_opt_in is False


@pytest.mark.django_db
def test_patients_sharing_a_phone_in_one_clinic_confirm_the_earliest_of_their_sessions(
    clinic, patient, sessions, front_desk, provider
):
    sibling = PatientFactory(clinic=clinic, phone=PHONE)
    at = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    sooner = SessionFactory(
        series=SeriesFactory(patient=sibling, created_by=front_desk),
        provider=provider,
        starts_at=at,
        ends_at=at + timedelta(hours=1),
    )

    assert accepted(reply("C"))

    message = InboundMessage.objects.get()
    assert (message.patient_id, message.session_id) == (sibling.id, sooner.id)
    sessions["next"].refresh_from_db()
    assert sessions["next"].confirmed_at is None


@pytest.mark.django_db
def test_an_unknown_phone_is_kept_without_a_clinic(patient):
    assert accepted(reply("C", sender="+442079460123"))
    assert accepted(reply("hello", "m-2", sender="not a phone"))

    rows = sorted(
        InboundMessage.objects.values_list("clinic", "patient", "sender", "action", "body"),
        key=str,
    )
    assert rows == [
        (None, None, "+442079460123", "none", "C"),
        (None, None, "not a phone", "none", "hello"),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "signature",
    [None, "", "sha256=" + "0" * 64, "sha256=nothex", "md5=abc", "wrong-secret"],
)
def test_a_bad_or_missing_signature_is_403_and_does_nothing(signature, patient):
    if signature == "wrong-secret":
        _raw, signature = signed({"message_id": "m-1", "from": PHONE, "body": "STOP"}, "other")
    response = post({"message_id": "m-1", "from": PHONE, "body": "STOP"}, signature=signature)

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert InboundMessage.objects.count() == 0
    patient.refresh_from_db()
    assert patient.sms_opt_in is True


@pytest.mark.django_db
def test_without_a_configured_secret_every_request_is_refused(patient):
    with override_settings(SMS_INBOUND_SECRET=""):
        response = post({"message_id": "m-1", "from": PHONE, "body": "STOP"}, secret="")
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")


@pytest.mark.django_db
def test_the_signature_covers_the_exact_bytes(patient):
    raw, signature = signed({"message_id": "m-1", "from": PHONE, "body": "C"})
    tampered = raw.replace(b'"C"', b'"STOP"')
    response = APIClient().post(
        URL, tampered, content_type="application/json", HTTP_X_SIGNATURE=signature
    )
    assert response.status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({"from": PHONE, "body": "C"}, ["message_id"]),
        ({"message_id": "m", "body": "C"}, ["from"]),
        ({"message_id": "m", "from": PHONE}, ["body"]),
        ({"message_id": "", "from": " ", "body": 3}, ["body", "from", "message_id"]),
        ({"message_id": "m" * 101, "from": PHONE, "body": "C"}, ["message_id"]),
    ],
)
def test_a_signed_request_that_is_not_a_message_is_400(payload, fields):
    response = post(payload)
    assert response.status_code == 400
    assert (response.json()["code"], sorted(response.json()["errors"])) == ("invalid", fields)
    assert InboundMessage.objects.count() == 0


@pytest.mark.django_db
def test_signed_garbage_is_400():
    raw = b"not json"
    signature = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    response = APIClient().post(
        URL, raw, content_type="application/json", HTTP_X_SIGNATURE=signature
    )
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
