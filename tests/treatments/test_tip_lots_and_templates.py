from datetime import timedelta

import pytest
from django.utils import timezone

from clinic.models import AuditEvent
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)
from tests.factories.treatments import TipLotFactory
from treatments import rules
from treatments.models import AftercareTemplate


@pytest.mark.django_db
def test_receive_a_lot(provider, api):
    expires = (timezone.localdate() + timedelta(days=200)).isoformat()
    response = api(provider).post(
        "/api/v1/tip-lots/",
        {"lot_number": "A123", "expires_on": expires, "quantity_received": 12},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body == {
        "id": body["id"],
        "lot_number": "A123",
        "gtin": "",
        "expires_on": expires,
        "quantity_received": 12,
        "quantity_used": 0,
        "quantity_remaining": 12,
        "status": "active",
        "received_at": body["received_at"],
        "recalled_at": None,
    }
    assert AuditEvent.objects.get(action="tip_lot.receive").actor_id == provider.id


@pytest.mark.django_db
def test_lot_number_is_unique_within_a_clinic_only(provider, other_clinic, api):
    TipLotFactory(clinic=other_clinic, lot_number="SAME")
    client = api(provider)
    body = {"lot_number": "SAME", "expires_on": "2030-01-01", "quantity_received": 5}
    assert client.post("/api/v1/tip-lots/", body).status_code == 201
    response = client.post("/api/v1/tip-lots/", body)
    assert response.status_code == 400
    assert response.json()["errors"] == {"lot_number": ["This lot number is already in stock."]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        {"quantity_received": 0},
        {"quantity_received": -1},
        {"expires_on": "soon"},
        {"gtin": "12AB"},
        {"lot_number": ""},
    ],
)
def test_bad_lot_fields_are_400(provider, api, change):
    body = {"lot_number": "X1", "expires_on": "2030-01-01", "quantity_received": 5, **change}
    response = api(provider).post("/api/v1/tip-lots/", body)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == list(change)


@pytest.mark.parametrize(
    ("recalled", "used", "expires_delta", "status"),
    [
        (False, 0, 10, "active"),
        (False, 0, 0, "active"),  # usable on its expiry date
        (False, 0, -1, "expired"),
        (False, 10, 10, "exhausted"),
        (False, 10, -1, "exhausted"),
        (True, 10, -1, "recalled"),
        (True, 0, 10, "recalled"),
    ],
)
def test_lot_status_precedence(recalled, used, expires_delta, status):
    today = timezone.localdate()
    assert (
        rules.lot_status(
            expires_on=today + timedelta(days=expires_delta),
            quantity_received=10,
            quantity_used=used,
            recalled=recalled,
            today=today,
        )
        == status
    )


# --- aftercare templates -------------------------------------------------------------------


@pytest.mark.django_db
def test_a_new_clinic_starts_with_the_default_aftercare_template(api):
    from django.core.management import call_command

    from clinic.models import User

    call_command(
        "create_clinic",
        "--name=Fresh",
        "--timezone=UTC",
        "--admin-username=fresh",
        "--admin-password=a-Long-pass-1",
    )
    templates = api(User.objects.get(username="fresh")).get("/api/v1/aftercare-templates/")
    [template] = templates.json()["results"]
    assert template["is_default"] is True
    assert template["steps"] == [dict(step) for step in rules.DEFAULT_AFTERCARE_STEPS]


@pytest.mark.django_db
def test_templates_are_created_and_edited_by_admins(admin, provider, api):
    steps = [
        {"day_offset": 2, "product": "", "instruction": "Gentle cleanser only."},
        {"day_offset": 0, "product": "Skinfuse Rescue", "instruction": "Apply twice daily."},
    ]
    response = api(admin).post(
        "/api/v1/aftercare-templates/", {"name": "Sensitive skin", "steps": steps}
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert [s["day_offset"] for s in created["steps"]] == [0, 2]
    assert (
        api(provider)
        .post("/api/v1/aftercare-templates/", {"name": "X", "steps": steps})
        .status_code
        == 403
    )

    response = api(admin).patch(
        f"/api/v1/aftercare-templates/{created['id']}/", {"is_default": True}
    )
    assert response.json()["is_default"] is True
    assert AftercareTemplate.objects.filter(clinic=admin.clinic, is_default=True).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"name": "Empty", "steps": []},
        {"name": "Neg", "steps": [{"day_offset": -1, "instruction": "x"}]},
        {"name": "NoInstr", "steps": [{"day_offset": 1, "product": "P"}]},
    ],
)
def test_bad_templates_are_400(admin, api, body):
    response = api(admin).post("/api/v1/aftercare-templates/", body)
    assert (response.status_code, response.json()["code"]) == (400, "invalid")


@pytest.mark.django_db(transaction=True)
def test_concurrent_default_switches_leave_exactly_one_default(admin, api):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection as db

    steps = [{"day_offset": 0, "product": "", "instruction": "Rest."}]
    clients = [api(admin) for _ in range(8)]

    def create(n):
        try:
            return (
                clients[n]
                .post(
                    "/api/v1/aftercare-templates/",
                    {"name": f"T{n}", "steps": steps, "is_default": True},
                )
                .status_code
            )
        finally:
            db.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(create, range(8))) == [201] * 8
    assert AftercareTemplate.objects.filter(clinic=admin.clinic, is_default=True).count() == 1
