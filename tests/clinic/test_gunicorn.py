"""The real server: gunicorn with gunicorn.conf.py. What it refuses before Django sees the
request is problem+json too, and its access log never holds a query string."""

import json
import os
import socket
import subprocess
import sys
import time
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import assert_problem

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """gunicorn on a free port, one worker; yields (port, read_logs)."""
    port = free_port()
    logs = tmp_path_factory.mktemp("gunicorn")
    out, err = (logs / "access.log").open("wb"), (logs / "error.log").open("wb")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "clinic.settings_test",
        "API_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "clinic.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=err,
    )
    # Ready when the worker answers, not when the master accepts: the worker imports the app
    # after fork (seconds on a loaded machine), and the tests' reads time out after 10 s.
    deadline = time.monotonic() + 120
    while True:
        try:
            probe = HTTPConnection("127.0.0.1", port, timeout=30)
            probe.request("GET", "/healthz/")
            probe.getresponse().read()
            probe.close()
            break
        except OSError:
            assert process.poll() is None, (logs / "error.log").read_text()
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)

    def read_logs() -> str:
        out.flush()
        err.flush()
        return (logs / "access.log").read_text() + (logs / "error.log").read_text()

    yield port, read_logs
    process.terminate()
    process.wait(timeout=30)
    out.close()
    err.close()


class RawResponse:
    """A response read off the socket, as the suite's assertions read a test client's: its
    status_code, headers by name (any case), content and json()."""

    def __init__(self, data: bytes) -> None:
        head, _, self.content = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status_code = int(status_line.split()[1])
        self.headers = {
            name.lower(): value for name, value in (line.split(": ", 1) for line in header_lines)
        }

    def __getitem__(self, name: str) -> str:
        return self.headers[name.lower()]

    def json(self) -> Any:
        return json.loads(self.content)


def raw(port: int, request: bytes) -> RawResponse:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    return RawResponse(data)


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def test_a_request_line_over_the_limit_is_414_problem_json(server):
    port, read_logs = server
    answer = raw(port, get("/api/v1/patients/?search=" + "Lovelace" * 600))
    assert_problem(answer, 414, "uri_too_long")
    assert "Lovelace" not in read_logs()


def test_too_many_headers_is_431_problem_json(server):
    port, _logs = server
    answer = raw(port, get("/api/v1/patients/", *(f"X-Filler-{n}: x" for n in range(60))))
    assert_problem(answer, 431, "headers_too_large")


def test_a_header_over_the_limit_is_431_problem_json(server):
    port, _logs = server
    assert_problem(
        raw(port, get("/api/v1/patients/", "X-Big: " + "y" * 9000)), 431, "headers_too_large"
    )


def test_a_request_that_is_not_http_is_400_problem_json(server):
    port, read_logs = server
    assert_problem(raw(port, b"HELLO Lovelace?\r\n\r\n"), 400, "invalid")
    assert "Lovelace" not in read_logs()


def test_the_access_log_has_the_path_and_never_the_query(server):
    port, read_logs = server
    answer = raw(port, get("/api/v1/patients/?search=Lovelace&phone=2025550143"))
    assert (answer.status_code, answer["Cache-Control"]) == (401, "no-store")
    time.sleep(0.5)  # the access line is written after the response
    logs = read_logs()
    line = next(
        line for line in logs.splitlines() if '"GET /api/v1/patients/ HTTP/1.1" 401' in line
    )
    assert answer["X-Request-ID"] in line
    assert "Lovelace" not in logs
    assert "2025550143" not in logs
    assert "search=" not in logs
    assert "Booting worker" in logs  # gunicorn's own log, through the same filter
