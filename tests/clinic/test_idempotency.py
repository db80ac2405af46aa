import pytest

from clinic.api.views import RoomViewSet
from clinic.models import IdempotencyKey, Room


@pytest.mark.django_db
def test_a_replay_says_it_is_one(admin, api):
    """What a replay answers (the first response, nothing created), a reused key, keys per user
    and a replay while the first runs are the contract's: tests/contract/
    test_foundation_contract.py checks them over HTTP. The header is the implementation's own."""
    client = api(admin)
    client.post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY="k1")
    again = client.post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY="k1")
    assert again["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_a_server_error_is_not_stored_so_a_retry_runs(admin, api, monkeypatch):
    from clinic import services

    real = services.create_room
    monkeypatch.setattr(RoomViewSet, "create_service", staticmethod(lambda **kw: 1 / 0))
    client = api(admin)
    client.raise_request_exception = False
    assert client.post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY="k").status_code == 500
    monkeypatch.setattr(RoomViewSet, "create_service", staticmethod(real))
    assert client.post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    assert IdempotencyKey.objects.count() == 1


@pytest.mark.django_db
def test_keys_are_purged_after_the_ttl(admin, api):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    from clinic.tasks import purge_idempotency_keys

    api(admin).post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY="k")
    # Kept at least 24 h: test_foundation_contract.py, test_keys_are_kept_at_least_24_hours.
    with time_machine.travel(timezone.now() + timedelta(hours=49)):
        purge_idempotency_keys()
    assert IdempotencyKey.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", " ", "   ", "\t"])
def test_an_empty_or_blank_key_is_400_not_no_key(admin, api, key):
    """Taken as no key, a client whose key generator broke would create a duplicate on retry."""
    client = api(admin)
    for _attempt in range(2):
        response = client.post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY=key)
        assert response.status_code == 400, response.content
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "invalid"
    assert Room.objects.count() == 0
    assert IdempotencyKey.objects.count() == 0


@pytest.mark.django_db
def test_a_json_body_nested_too_deeply_with_a_key_is_400(admin, api):
    client = api(admin)
    body = b"[" * 1000 + b"]" * 1000
    for _attempt in range(2):
        response = client.post(
            "/api/v1/rooms/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="deep"
        )
        assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert Room.objects.count() == 0
