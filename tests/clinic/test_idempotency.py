from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from clinic.api.views import RoomViewSet
from clinic.models import IdempotencyKey, Room
from tests.committed import flush_only_written_tables  # noqa: F401 (autouse)


@pytest.mark.django_db
def test_replay_returns_the_first_response_and_creates_nothing(admin, api):
    client = api(admin)
    first = client.post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY="k1")
    again = client.post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY="k1")

    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Room.objects.count() == 1


@pytest.mark.django_db
def test_same_key_different_body_is_422(admin, api):
    client = api(admin)
    client.post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY="k1")
    response = client.post("/api/v1/rooms/", {"name": "B"}, HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert Room.objects.count() == 1


@pytest.mark.django_db
def test_same_key_on_another_endpoint_is_422(admin, api):
    client = api(admin)
    client.post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY="k1")
    response = client.post("/api/v1/handpieces/", {"serial_number": "A"}, HTTP_IDEMPOTENCY_KEY="k1")
    assert response.json()["code"] == "idempotency_key_reused"


@pytest.mark.django_db
def test_keys_are_scoped_to_the_user(admin, make_user, api):
    other_admin = make_user("admin", admin.clinic)
    api(admin).post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY="k1")
    response = api(other_admin).post("/api/v1/rooms/", {"name": "B"}, HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 201
    assert Room.objects.count() == 2


@pytest.mark.django_db
def test_an_error_response_is_replayed_too_and_wrote_nothing(admin, api):
    client = api(admin)
    client.post("/api/v1/rooms/", {"name": "A"})
    first = client.post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY="dup")
    again = client.post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY="dup")
    assert first.status_code == again.status_code == 400
    assert first.json() == again.json()
    assert again["Content-Type"] == "application/problem+json"


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


@pytest.mark.django_db(transaction=True)
def test_a_replay_while_the_first_runs_is_409_in_progress(admin, api, monkeypatch):
    """The first request holds the key's lock until it commits; the second is told to wait."""
    import threading

    from clinic import services

    real = services.create_room
    started, release = threading.Event(), threading.Event()

    def slow_create_room(**kwargs):
        started.set()
        release.wait(10)
        return real(**kwargs)

    monkeypatch.setattr(RoomViewSet, "create_service", staticmethod(slow_create_room))

    def first():
        try:
            return api(admin).post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY="k")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(first)
        assert started.wait(10)
        second = api(admin).post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY="k")
        release.set()
        first_response = future.result()

    assert second.status_code == 409
    assert second.json()["code"] == "idempotency_in_progress"
    assert first_response.status_code == 201
    third = api(admin).post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY="k")
    assert third.json() == first_response.json()
    assert Room.objects.count() == 1


@pytest.mark.django_db
def test_keys_are_purged_after_the_ttl(admin, api):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    from clinic.tasks import purge_idempotency_keys

    api(admin).post("/api/v1/rooms/", {"name": "A"}, HTTP_IDEMPOTENCY_KEY="k")
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        purge_idempotency_keys()
    assert IdempotencyKey.objects.count() == 1  # kept at least 24 h
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
