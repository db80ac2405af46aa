"""The schema documents what the server answers: the problem body's code-specific members, and
links from each create to the new object's own operations."""

import pytest
from drf_spectacular.generators import SchemaGenerator


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_the_problem_body_names_every_member_a_code_adds(schema):
    properties = schema["components"]["schemas"]["Problem"]["properties"]
    assert set(properties) == {
        "type", "title", "status", "detail", "code", "errors", "reasons", "warnings",
        "consent_forms", "sessions", "otp_required", "request_id", "database", "broker",
    }  # fmt: skip
    assert properties["sessions"] == {
        "type": "array",
        "items": {"type": "string", "format": "uuid"},
        "description": "sessions_conflict: the ids of the active sessions the time off overlaps.",
    }


def test_a_create_links_to_the_new_objects_operations(schema):
    links = schema["paths"]["/api/v1/patients/"]["post"]["responses"]["201"]["links"]
    assert links["patients_retrieve"] == {
        "operationId": "patients_retrieve",
        "parameters": {"id": "$response.body#/id"},
    }
    assert links["fhir_patient_everything"]["parameters"] == {"id": "$response.body#/id"}
    nested = schema["paths"]["/api/v1/patients/{id}/consents/"]["post"]["responses"]["201"]
    assert nested["links"]["patients_consents_revoke_create"]["parameters"] == {
        "id": "$request.path.id",
        "consent_id": "$response.body#/id",
    }


def test_an_empty_filter_is_documented_as_absent(schema):
    parameters = schema["paths"]["/api/v1/sessions/"]["get"]["parameters"]
    by_name = {parameter["name"]: parameter for parameter in parameters}
    assert by_name["patient"]["allowEmptyValue"] is True
    assert by_name["page"]["schema"] == {"type": "integer", "minimum": 1}
    assert "allowEmptyValue" not in by_name["page"]
