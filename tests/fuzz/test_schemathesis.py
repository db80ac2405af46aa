"""schemathesis against the project's own OpenAPI schema, in-process, with every check, as
every role of a seeded clinic: no 5xx, every status code, header and body as the schema says,
every input the schema forbids refused, every input it allows accepted."""

import os
import uuid

import pytest
from django.db import transaction
from hypothesis import HealthCheck, Phase, settings

from clinic.models import Role
from tests.fuzz.conftest import fuzz_config, load_schema, record, report, run_operations
from tests.fuzz.world import object_id
from tests.world import World

STATEFUL_SETTINGS = settings(
    max_examples=int(os.environ.get("FUZZ_STATEFUL_RUNS", "3")),
    stateful_step_count=int(os.environ.get("FUZZ_STATEFUL_STEPS", "8")),
    derandomize=True,
    # The server's state outlives a run, so a replayed run (to shrink a failure) sees other
    # objects and Hypothesis calls the strategy flaky: report the failure as first found.
    phases=[Phase.explicit, Phase.generate],
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def send(case, world: World, role: str):
    """Call the operation as `role`, with the seeded object's id in place of a generated UUID."""
    for name, value in list(case.path_parameters.items()):
        real = object_id(world, case.path, name)
        if real and _is_uuid(value):
            case.path_parameters[name] = real
    response = case.call()
    record(case, response)
    case.validate_response(response)
    return response


@pytest.mark.parametrize("role", [Role.ADMIN, Role.FRONT_DESK, Role.PROVIDER, Role.AUDITOR])
def test_every_operation_as_every_role(world, role):
    schema = load_schema(fuzz_config(world.token(role), without_logout=True))
    failures = run_operations(schema, lambda case: send(case, world, role))
    # Logout ends the token it is sent with: each of its cases gets a token of its own.
    logout = load_schema(fuzz_config(None)).include(path="/api/v1/auth/logout/")

    @logout.auth(refresh_interval=None)
    class FreshToken:
        def get(self, case, context):
            return world.fresh_token(role)

        def set(self, case, token, context):
            case.headers["Authorization"] = f"Bearer {token}"

    failures.update(run_operations(logout, lambda case: send(case, world, role)))
    assert failures == {}, report(failures)


FIRST_FAILURES: list[str] = []
STATEFUL_ROLES = os.environ.get("FUZZ_STATEFUL_ROLES", "admin,provider").split(",")


@pytest.mark.parametrize("role", STATEFUL_ROLES)
def test_stateful_over_the_schemas_links(world, role):
    """schemathesis' state machine follows the schema's links (a create's id into the object's
    own operations), with every check, use_after_free and ensure_resource_availability
    included."""
    schema = load_schema(fuzz_config(world.token(role), without_logout=True))

    class Workflow(schema.as_state_machine()):
        # Each run starts from the seeded clinic, as a fresh server would: what one run created
        # must not change which links the next (or Hypothesis' replay of it) can follow.
        def setup(self):
            self.savepoint = transaction.savepoint()

        def teardown(self):
            transaction.savepoint_rollback(self.savepoint)

        def after_call(self, response, case):
            record(case, response)

        def validate_response(self, response, case, **kwargs):
            try:
                super().validate_response(response, case, **kwargs)
            except BaseException as exc:
                # Hypothesis replays a failing run to report it, and the server's state has
                # moved on by then: keep what failed the first time.
                FIRST_FAILURES.append(str(exc))
                raise

    try:
        Workflow.run(settings=STATEFUL_SETTINGS)
    except BaseException:
        if FIRST_FAILURES:
            pytest.fail(FIRST_FAILURES[0])
        raise
