import json
import os
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer

from tests.world import World, build_world

ROOT = Path(__file__).resolve().parents[2]
# The suite runs a bounded, repeatable sample; `make fuzz` (scripts/fuzz.sh) sets these higher.
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "10"))
SEED = int(os.environ.get("FUZZ_SEED", "15"))
# schemathesis' coverage phase (every boundary and every kind of wrong value of every field, some
# 4,000 cases a role) runs in `make fuzz`; the suite samples the fuzzing phase.
COVERAGE = os.environ.get("FUZZ_COVERAGE", "") == "1"


@pytest.fixture
def world(db) -> World:
    world = build_world()
    # As Django's test client does around each request (it reconnects them after its own): a
    # request through the WSGI app must not close the test's connection and transaction.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield world
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def fuzz_config(token: str | None, *, without_logout: bool = False) -> schemathesis.Config:
    """The repository's schemathesis.toml (what a CLI run reads too), with this run's seed,
    number of examples and bearer token (`without_logout`: a run that must keep its token)."""
    data = tomllib.loads((ROOT / "schemathesis.toml").read_text())
    data["seed"] = SEED
    data.setdefault("generation", {})["max-examples"] = MAX_EXAMPLES
    if token:
        data["auth"] = {"openapi": {"bearerAuth": {"bearer": token}}}
    data.setdefault("phases", {}).setdefault("coverage", {})["enabled"] = COVERAGE
    if without_logout:
        data["operations"] = [{"include-path": "/api/v1/auth/logout/", "enabled": False}]
    return schemathesis.Config.from_dict(data)


def load_schema(config: schemathesis.Config) -> schemathesis.BaseSchema:
    """The project's own schema, as /api/schema/?format=json serves it, called in-process
    through the WSGI app."""
    generated = SchemaGenerator().get_schema(request=None, public=True)
    raw = json.loads(OpenApiJsonRenderer().render(generated, renderer_context={}))
    schema = schemathesis.openapi.from_dict(raw, config=config)
    schema.app = WSGIHandler()
    return schema


def run_operations(schema, call) -> dict[str, str]:
    """Every operation's examples, coverage and fuzzing cases (as schemathesis' pytest plugin
    builds them), each passed to `call`; the failures by operation."""
    from schemathesis.pytest.lazy import get_all_tests

    def test_func(case):
        call(case)

    failures: dict[str, str] = {}
    for result in get_all_tests(schema=schema, test_func=test_func, settings=None, given_kwargs={}):
        operation, test = result.ok()
        try:
            test()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup, or a bug
            failures[operation.label] = _describe(exc)
    return failures


def _describe(exc: BaseException) -> str:
    text = str(exc)
    for sub in getattr(exc, "exceptions", ()):
        text += "\n" + str(sub)
    return text


# Cases sent and statuses answered, by operation: `make fuzz` prints them.
STATS: dict[str, Counter] = defaultdict(Counter)


def record(case, response) -> None:
    STATS[f"{case.method} {case.operation.path}"][response.status_code] += 1


def pytest_terminal_summary(terminalreporter) -> None:
    if not (os.environ.get("FUZZ_SUMMARY") and STATS):
        return
    write = terminalreporter.write_line
    write("")
    write("schemathesis summary (cases sent by operation, then by status)")
    total = Counter()
    for label in sorted(STATS):
        counts = STATS[label]
        total.update(counts)
        by_status = " ".join(f"{status}:{n}" for status, n in sorted(counts.items()))
        write(f"  {sum(counts.values()):6d}  {label:<66} {by_status}")
    by_status = " ".join(f"{status}:{n}" for status, n in sorted(total.items()))
    write(f"  {sum(total.values()):6d}  cases over {len(STATS)} operations  {by_status}")
    phases = "examples, coverage, fuzzing" if COVERAGE else "examples, fuzzing"
    write(f"  phases {phases}; {MAX_EXAMPLES} examples per operation and role; seed {SEED}")


def report(failures: dict[str, str]) -> str:
    text = "\n\n".join(f"=== {label}\n{failure}" for label, failure in sorted(failures.items()))
    if os.environ.get("FUZZ_REPORT"):
        Path(os.environ["FUZZ_REPORT"]).write_text(text)
    return f"{len(failures)} operations failed:\n\n{text}"
