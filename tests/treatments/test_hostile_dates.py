"""Hostile dates on clinical records: 400 problem+json `invalid` naming the field, never a 500
(`performed_at` `0001-01-01T00:00:00Z` was one: its local date in New York is before year 1)."""

import pytest

from tests.treatments.conftest import treatment_body
from treatments.models import TipLot, TreatmentRecord

PROBLEM = "application/problem+json"


def assert_invalid(response, field: str) -> None:
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert (body["code"], list(body["errors"])) == ("invalid", [field])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "performed_at",
    [
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "1899-12-31T23:00:00Z",
        "2026-03-01 10:00:00Z",
        "20260301T100000Z",
        "2026-03-01T10:00:00",
    ],
)
def test_a_hostile_performed_at_is_400(provider, session, lot, api, performed_at):
    response = api(provider).post(
        f"/api/v1/sessions/{session.id}/treatment/",
        treatment_body(lot, performed_at=performed_at),
    )
    assert_invalid(response, "performed_at")
    assert TreatmentRecord.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("expires_on", ["9999-12-31", "0001-01-01", "20300101", "2030-1-1"])
def test_a_hostile_lot_expiry_is_400(provider, api, expires_on):
    response = api(provider).post(
        "/api/v1/tip-lots/",
        {"lot_number": "X1", "expires_on": expires_on, "quantity_received": 5},
    )
    assert_invalid(response, "expires_on")
    assert TipLot.objects.count() == 0
