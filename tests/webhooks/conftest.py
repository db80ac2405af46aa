"""A real HTTP receiver (pytest-httpserver) and helpers to read what it got."""

import json
from dataclasses import dataclass

import pytest
from standardwebhooks import Webhook

from scheduling.webhooks import sender


@dataclass
class Received:
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    def verified(self, secret: str) -> dict:
        """The payload, after standardwebhooks has checked the signature (raises if wrong)."""
        return Webhook(secret).verify(self.body, self.headers)


@pytest.fixture
def receiver(httpserver):
    """A local receiver answering 200 on /hook unless a test says otherwise."""
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    return httpserver


def received(httpserver) -> list[Received]:
    return [
        Received(headers=dict(request.headers), body=request.get_data(as_text=True))
        for request, _response in httpserver.log
    ]


def drain() -> dict[str, int]:
    """What the worker would do: send every due delivery."""
    return dict(sender.send_due())
