"""Twilio, as an SMS backend: sends through the twilio library and checks Twilio's inbound
webhook signature with its RequestValidator.

Selected by the environment:

    SMS_BACKEND=scheduling.twilio_sms.TwilioSMSBackend
    SMS_BACKEND_OPTIONS='{"account_sid": "AC...", "auth_token": "...", "from_number": "+1..."}'

(`messaging_service_sid` in place of `from_number` sends through a Messaging Service.) Point the
number's "A message comes in" webhook at https://<host>/api/v1/inbound/sms/ (HTTP POST). Twilio
signs the URL it called; behind a proxy that rewrites it, set `inbound_url` to that exact URL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from scheduling.channels import (
    InboundInvalid,
    InboundRequest,
    InboundSMS,
    PermanentSendError,
    SMSBackend,
)

SIGNATURE_HEADER = "X-Twilio-Signature"


class TwilioSMSBackend(SMSBackend):
    def __init__(
        self,
        *,
        account_sid: str = "",
        auth_token: str = "",
        from_number: str = "",
        messaging_service_sid: str = "",
        inbound_url: str = "",
        timeout_seconds: float = 10.0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.inbound_url = inbound_url
        self.timeout_seconds = timeout_seconds

    def send(self, *, to: str, body: str, reference: str) -> None:
        client = Client(
            self.account_sid,
            self.auth_token,
            http_client=TwilioHttpClient(timeout=self.timeout_seconds),
        )
        sender: dict[str, str] = (
            {"messaging_service_sid": self.messaging_service_sid}
            if self.messaging_service_sid
            else {"from_": self.from_number}
        )
        try:
            client.messages.create(to=to, body=body, **sender)
        except TwilioRestException as exc:
            # A 4xx other than 429 is Twilio refusing this message (a bad number): for good.
            if 400 <= (exc.status or 0) < 500 and exc.status != 429:
                raise PermanentSendError(f"Twilio refused the message: {exc.code}") from exc
            raise

    def verify_inbound(self, request: InboundRequest) -> bool:
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not (self.auth_token and signature):
            return False
        params = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        validator = RequestValidator(self.auth_token)
        return bool(validator.validate(self.inbound_url or request.url, params, signature))

    def parse_inbound(self, request: InboundRequest) -> InboundSMS:
        params = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        missing = [name for name in ("MessageSid", "From") if not params.get(name)]
        if missing:
            raise InboundInvalid({name: ["This field is required."] for name in missing})
        return InboundSMS(
            message_id=params["MessageSid"], sender=params["From"], body=params.get("Body", "")
        )
