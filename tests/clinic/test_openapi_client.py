"""The schema is for people who generate clients from it: generate one with
openapi-python-client and use it, over real HTTP, to log in and list patients."""

import importlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from drf_spectacular.generators import SchemaGenerator
from knox.models import AuthToken

from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.factories import PatientFactory
from tests.factories.clinic import PASSWORD

GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.fixture(scope="module")
def generated_client():
    """The generated package, importable as `clinic_client` (generated once per module)."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    with tempfile.TemporaryDirectory(prefix="openapi-client-") as work:
        work_dir = Path(work)
        (work_dir / "schema.json").write_text(json.dumps(schema))
        (work_dir / "config.yaml").write_text("post_hooks: []\n")
        subprocess.run(  # noqa: S603 (a fixed command line)
            [
                str(GENERATOR),
                "generate",
                "--path",
                str(work_dir / "schema.json"),
                "--config",
                str(work_dir / "config.yaml"),
                "--meta",
                "none",
                "--output-path",
                str(work_dir / "clinic_client"),
            ],
            check=True,
            capture_output=True,
        )
        sys.path.insert(0, work)
        try:
            yield importlib.import_module("clinic_client")
        finally:
            sys.path.remove(work)
            for name in [m for m in sys.modules if m.split(".")[0] == "clinic_client"]:
                del sys.modules[name]


def test_the_schema_reads_well_for_client_generators():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = [
        (path, method, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    ]
    assert [
        (path, method) for path, method, operation in operations if not operation.get("summary")
    ] == []
    tags = {tag for _path, _method, operation in operations for tag in operation["tags"]}
    assert "api" not in tags
    assert {"patients", "screenings", "series", "sessions", "treatment", "tip-lots"} <= tags
    components = schema["components"]["schemas"]
    assert [name for name in components if name.endswith(("RequestRequest", "InputRequest"))] == []
    assert "TokenRequest" in components


@pytest.mark.django_db(transaction=True)
def test_a_generated_client_logs_in_and_lists_patients(generated_client, live_server, front_desk):
    from clinic_client import Client
    from clinic_client.api.auth import auth_token_create
    from clinic_client.api.patients import patients_list
    from clinic_client.models import TokenRequest

    patient = PatientFactory(clinic=front_desk.clinic, last_name="Lovelace")
    with Client(base_url=live_server.url) as anonymous:
        token = auth_token_create.sync(
            client=anonymous, body=TokenRequest(username=front_desk.username, password=PASSWORD)
        )
    assert type(token).__name__ == "Token", token

    with generated_client.AuthenticatedClient(
        base_url=live_server.url, token=token.token
    ) as signed_in:
        page = patients_list.sync(client=signed_in, page_size=10)
    assert type(page).__name__ == "PaginatedPatientList", page
    assert [(p.id, p.last_name) for p in page.results] == [(patient.id, "Lovelace")]
    assert (page.next_, page.previous) == (None, None)


def test_the_schema_names_the_fhir_path_with_its_dollar():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    fhir = [path for path in schema["paths"] if "/fhir/" in path]
    assert fhir == ["/api/v1/fhir/Patient/{id}/$everything"]


@pytest.mark.django_db(transaction=True)
def test_a_generated_client_reaches_the_fhir_everything(generated_client, live_server, auditor):
    from clinic_client.api.fhir import fhir_patient_everything

    patient = PatientFactory(clinic=auditor.clinic)
    token = AuthToken.objects.create(user=auditor)[1]
    with generated_client.AuthenticatedClient(base_url=live_server.url, token=token) as client:
        response = fhir_patient_everything.sync_detailed(client=client, id=patient.id)
    assert response.status_code == 200, response.content
    bundle = json.loads(response.content)
    assert (bundle["resourceType"], bundle["entry"][0]["resource"]["id"]) == (
        "Bundle",
        str(patient.id),
    )
