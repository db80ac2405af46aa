"""Email and SMS backends for tests that run a real worker process: each message becomes one
line appended to the file named by NOTIFY_TEST_LOG, so the test process sees every delivery.

NOTIFY_TEST_DELAY (seconds) stands for the provider's latency, before it accepts the message
and again before its answer is back, which is where a killed worker leaves a message
delivered but not yet recorded.
"""

import os
import time

from django.core.mail.backends.base import BaseEmailBackend

from scheduling.channels import SMSBackend


def _deliver(line: str) -> None:
    delay = float(os.environ.get("NOTIFY_TEST_DELAY", "0"))
    time.sleep(delay)
    # One write() on an O_APPEND file: lines from several processes never interleave.
    fd = os.open(os.environ["NOTIFY_TEST_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)
    time.sleep(delay)


class LineEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        for message in email_messages:
            _deliver(f"email {message.extra_headers['Message-ID']}")
        return len(email_messages)


class LineSMSBackend(SMSBackend):
    def send(self, *, to, body, reference):
        _deliver(f"sms {reference}")
