"""The Twilio adapter: form-encoded MessageSid/From/Body, X-Twilio-Signature checked with the
twilio library's RequestValidator over the URL Twilio called."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient
from twilio.request_validator import RequestValidator

from scheduling.notifications.models import InboundMessage
from tests.factories import PatientFactory, SeriesFactory
from tests.factories.scheduling import SessionFactory

URL = "/api/v1/inbound/sms/"
TOKEN = "twilio-auth-token"
BACKEND = "scheduling.twilio_sms.TwilioSMSBackend"
PARAMS = {
    "MessageSid": "SM0123456789abcdef0123456789abcdef",
    "AccountSid": "AC0123456789abcdef0123456789abcdef",
    "From": "+12025550143",
    "To": "+12025550100",
    "Body": " c ",
    "NumMedia": "0",
}


def twilio_post(params: dict, *, signed_url: str = f"http://testserver{URL}", token=TOKEN):
    signature = RequestValidator(token).compute_signature(signed_url, params)
    return APIClient().post(
        URL,
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )


@pytest.fixture
def session(clinic, front_desk, provider):
    patient = PatientFactory(clinic=clinic, phone="+12025550143")
    at = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    return SessionFactory(
        series=SeriesFactory(patient=patient, created_by=front_desk),
        provider=provider,
        starts_at=at,
        ends_at=at + timedelta(hours=1),
    )


@pytest.mark.django_db
@override_settings(SMS_BACKEND=BACKEND, SMS_BACKEND_OPTIONS={"auth_token": TOKEN})
def test_a_signed_twilio_reply_confirms(session):
    response = twilio_post(PARAMS)

    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    message = InboundMessage.objects.get()
    assert (message.message_id, message.sender, message.body, message.action) == (
        PARAMS["MessageSid"],
        "+12025550143",
        " c ",
        "confirmed",
    )
    session.refresh_from_db()
    assert session.confirmed_at is not None
    # Twilio retries a webhook it got no answer to: the same MessageSid does nothing more.
    assert twilio_post(PARAMS).status_code == 200
    assert InboundMessage.objects.count() == 1


@pytest.mark.django_db
@override_settings(SMS_BACKEND=BACKEND, SMS_BACKEND_OPTIONS={"auth_token": TOKEN})
@pytest.mark.parametrize(
    "how", ["wrong token", "another url", "tampered body", "no header", "built-in signature"]
)
def test_a_bad_twilio_signature_is_403(session, how):
    client = APIClient()
    if how == "wrong token":
        response = twilio_post(PARAMS, token="not-the-token")
    elif how == "another url":
        response = twilio_post(PARAMS, signed_url="https://evil.example.com/api/v1/inbound/sms/")
    elif how == "tampered body":
        signature = RequestValidator(TOKEN).compute_signature(f"http://testserver{URL}", PARAMS)
        response = client.post(
            URL,
            urlencode({**PARAMS, "Body": "STOP"}),
            content_type="application/x-www-form-urlencoded",
            HTTP_X_TWILIO_SIGNATURE=signature,
        )
    elif how == "no header":
        response = client.post(
            URL, urlencode(PARAMS), content_type="application/x-www-form-urlencoded"
        )
    else:
        response = client.post(
            URL,
            urlencode(PARAMS),
            content_type="application/x-www-form-urlencoded",
            HTTP_X_SIGNATURE="sha256=00",
        )

    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert InboundMessage.objects.count() == 0


@pytest.mark.django_db
def test_behind_a_proxy_the_configured_url_is_the_one_signed(session):
    public = "https://clinic.example.com/api/v1/inbound/sms/"
    options = {"auth_token": TOKEN, "inbound_url": public}
    with override_settings(SMS_BACKEND=BACKEND, SMS_BACKEND_OPTIONS=options):
        assert twilio_post(PARAMS, signed_url=public).status_code == 200
        assert twilio_post({**PARAMS, "MessageSid": "SM2"}).status_code == 403


@pytest.mark.django_db
@override_settings(SMS_BACKEND=BACKEND, SMS_BACKEND_OPTIONS={"auth_token": TOKEN})
def test_a_signed_twilio_request_without_a_message_sid_is_400(session):
    params = {k: v for k, v in PARAMS.items() if k != "MessageSid"}
    response = twilio_post(params)
    assert (response.status_code, sorted(response.json()["errors"])) == (400, ["MessageSid"])
