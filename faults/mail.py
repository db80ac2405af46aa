"""An email backend for the fault runner: each message handed over becomes one file (with its
Message-ID), a little slowly, so that a batch is still going when the worker is killed."""

import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage


class RecordingEmailBackend(BaseEmailBackend):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.directory = Path(os.environ["FAULTS_MAIL_DIR"])

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        for message in email_messages:
            time.sleep(0.03)  # a provider's round trip
            path = self.directory / f"{uuid.uuid4().hex}.eml"
            path.write_bytes(message.message().as_bytes())
        return len(email_messages)
