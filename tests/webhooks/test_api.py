"""/api/v1/webhooks/: register (secret once), list, delete, deliveries, redeliver; roles and
tenancy; pinned query counts."""

import base64

import pytest
from django.test import override_settings
from django.utils import timezone

from clinic.models import AuditEvent
from scheduling.webhooks.models import WebhookEndpoint
from tests.factories import ClinicFactory
from tests.factories.webhooks import WebhookDeliveryFactory, WebhookEndpointFactory
from tests.webhooks.conftest import drain, received

URL = "/api/v1/webhooks/"


def body_of(endpoint: WebhookEndpoint) -> dict:
    return {
        "id": str(endpoint.id),
        "url": endpoint.url,
        "events": endpoint.events,
        "active": endpoint.active,
        "created_at": endpoint.created_at.isoformat().replace("+00:00", "Z"),
    }


@pytest.mark.django_db
def test_an_admin_registers_a_webhook_and_sees_its_secret_once(api, admin):
    response = api(admin).post(
        URL,
        {"url": "https://hooks.example.com/in", "events": ["session.cancelled", "session.booked"]},
    )

    assert response.status_code == 201, response.content
    endpoint = WebhookEndpoint.objects.get()
    body = response.json()
    assert body == {**body_of(endpoint), "secret": endpoint.secret}
    # Contract order, duplicates folded.
    assert body["events"] == ["session.booked", "session.cancelled"]
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) == 32
    assert api(admin).get(URL).json() == {
        "results": [body_of(endpoint)],
        "next": None,
        "previous": None,
    }
    assert api(admin).get(f"{URL}{endpoint.id}/").json() == body_of(endpoint)
    event = AuditEvent.objects.get(action="webhook.create")
    assert (event.object_id, event.actor_id) == (str(endpoint.id), admin.id)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "https://hooks.example.com/in", "events": []}, "events"),
        ({"url": "https://hooks.example.com/in", "events": ["session.eaten"]}, "events.0"),
        ({"url": "not a url", "events": ["session.booked"]}, "url"),
        ({"url": "ftp://hooks.example.com/in", "events": ["session.booked"]}, "url"),
        ({"events": ["session.booked"]}, "url"),
    ],
)
def test_bad_bodies_are_400(api, admin, body, field):
    response = api(admin).post(URL, body)
    assert response.status_code == 400
    assert (response.json()["code"], list(response.json()["errors"])) == ("invalid", [field])
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
@override_settings(WEBHOOK_ALLOW_PRIVATE_URLS=False, DEBUG=False)
@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/in",  # not https
        "https://127.0.0.1/in",
        "https://localhost/in",
        "https://10.1.2.3/in",
        "https://192.168.0.10:8443/in",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/in",
        "https://[fd00::1]/in",
        "https://[::ffff:10.0.0.1]/in",
        "https://100.64.0.1/in",
        "https://0.0.0.0/in",
    ],
)
def test_production_refuses_private_and_plain_http_urls(api, admin, url):
    response = api(admin).post(URL, {"url": url, "events": ["session.booked"]})

    assert response.status_code == 400, response.content
    assert (response.json()["code"], list(response.json()["errors"])) == ("invalid", ["url"])
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_delete_is_204_and_stops_what_is_pending(api, admin):
    endpoint = WebhookEndpointFactory(clinic=admin.clinic)
    pending = WebhookDeliveryFactory(endpoint=endpoint)

    response = api(admin).delete(f"{URL}{endpoint.id}/")

    assert response.status_code == 204
    assert api(admin).get(f"{URL}{endpoint.id}/").status_code == 404
    assert api(admin).get(URL).json()["results"] == []
    pending.refresh_from_db()
    assert (pending.status, pending.last_error) == ("failed", "endpoint deleted")
    assert api(admin).delete(f"{URL}{endpoint.id}/").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "read", "write"),
    [("admin", 200, 201), ("auditor", 200, 403), ("front_desk", 403, 403), ("provider", 403, 403)],
)
def test_roles(api, staff_by_role, role, read, write):
    endpoint = WebhookEndpointFactory(clinic=staff_by_role["admin"].clinic)
    delivery = WebhookDeliveryFactory(endpoint=endpoint, status="failed")
    client = api(staff_by_role[role])

    assert client.get(URL).status_code == read
    assert client.get(f"{URL}{endpoint.id}/deliveries/").status_code == read
    created = client.post(URL, {"url": "https://h.example.com/", "events": ["session.booked"]})
    assert created.status_code == write
    redeliver = client.post(f"{URL}{endpoint.id}/deliveries/{delivery.id}/redeliver/")
    assert redeliver.status_code == (202 if write == 201 else 403)
    assert client.delete(f"{URL}{endpoint.id}/").status_code == (204 if write == 201 else 403)
    if read == 200:
        # Nobody ever reads the secret back.
        assert "secret" not in str(client.get(URL).json())


@pytest.mark.django_db
def test_another_clinics_webhooks_are_404(api, admin):
    theirs = WebhookEndpointFactory(clinic=ClinicFactory())
    delivery = WebhookDeliveryFactory(endpoint=theirs)
    mine = WebhookEndpointFactory(clinic=admin.clinic)
    client = api(admin)

    assert client.get(URL).json()["results"] == [body_of(mine)]
    assert client.get(f"{URL}{theirs.id}/").status_code == 404
    assert client.get(f"{URL}{theirs.id}/deliveries/").status_code == 404
    assert client.delete(f"{URL}{theirs.id}/").status_code == 404
    assert client.post(f"{URL}{theirs.id}/deliveries/{delivery.id}/redeliver/").status_code == 404
    # Their delivery under my endpoint's path is not found either.
    assert client.post(f"{URL}{mine.id}/deliveries/{delivery.id}/redeliver/").status_code == 404
    assert WebhookEndpoint.objects.filter(deleted_at__isnull=True).count() == 2


@pytest.mark.django_db
def test_deliveries_list(api, auditor):
    endpoint = WebhookEndpointFactory(clinic=auditor.clinic)
    delivery = WebhookDeliveryFactory(
        endpoint=endpoint, status="sending", attempts=1, claimed_at=timezone.now()
    )
    WebhookDeliveryFactory(endpoint=WebhookEndpointFactory(clinic=auditor.clinic))

    response = api(auditor).get(f"{URL}{endpoint.id}/deliveries/")

    assert response.json() == {
        "results": [
            {
                "id": str(delivery.id),
                "event_type": "session.booked",
                "status": "pending",  # sending is a moment of pending
                "attempts": 1,
                "last_status_code": None,
                "delivered_at": None,
                "webhook_id": delivery.message_id,
                "next_attempt_at": delivery.next_attempt_at.isoformat().replace("+00:00", "Z"),
                "created_at": delivery.created_at.isoformat().replace("+00:00", "Z"),
            }
        ],
        "next": None,
        "previous": None,
    }


@pytest.mark.django_db
def test_redelivery_sends_the_same_message_again(api, admin, receiver):
    endpoint = WebhookEndpointFactory(clinic=admin.clinic, url=receiver.url_for("/hook"))
    delivery = WebhookDeliveryFactory(endpoint=endpoint)
    assert drain() == {"delivered": 1}

    response = api(admin).post(f"{URL}{endpoint.id}/deliveries/{delivery.id}/redeliver/")

    assert response.status_code == 202
    assert (response.json()["status"], response.json()["attempts"]) == ("pending", 0)
    assert drain() == {"delivered": 1}
    first, second = received(receiver)
    assert first.headers["Webhook-Id"] == second.headers["Webhook-Id"] == delivery.message_id
    assert first.body == second.body
    assert second.verified(endpoint.secret) == first.json
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert AuditEvent.objects.filter(action="webhook_delivery.redeliver").count() == 1
