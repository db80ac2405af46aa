"""Deliveries to a real local receiver: written with the change, signed (checked with the
standardwebhooks library), ids only, one per event, retried with the same webhook-id, sent once
however often the task runs, refused at send time by the SSRF guard in production."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from werkzeug import Response

from clinic.models import AuditEvent, Role
from scheduling import services as scheduling_services
from scheduling import tasks
from scheduling.models import SessionStatus
from scheduling.webhooks.models import WebhookDelivery
from tests.factories import PatientFactory, ScreeningFactory, SeriesFactory, SessionFactory
from tests.factories.treatments import TipLotFactory
from tests.factories.webhooks import WebhookDeliveryFactory, WebhookEndpointFactory
from tests.treatments.conftest import treatment_body
from tests.webhooks.conftest import drain, received

T = datetime(2027, 3, 10, 15, 0, tzinfo=UTC)  # 10:00 in New York
ATTESTED = {
    "pregnant_or_nursing": False,
    "active_skin_infection": False,
    "open_wounds_in_area": False,
}


@pytest.fixture
def hook(admin, receiver):
    """The clinic's endpoint for every event type, on the local receiver."""
    return WebhookEndpointFactory(clinic=admin.clinic, url=receiver.url_for("/hook"))


def a_series(clinic, front_desk, **kwargs):
    patient = PatientFactory(clinic=clinic, first_name="Marguerite", last_name="Oyelaran")
    ScreeningFactory(patient=patient, screened_by=front_desk, screened_on=clinic.today())
    return SeriesFactory(patient=patient, created_by=front_desk, **kwargs)


@pytest.mark.django_db
def test_every_event_is_delivered_once_signed_with_ids_only(
    api, clinic, admin, front_desk, provider, hook, receiver
):
    with time_machine.travel(T, tick=True):
        series = a_series(clinic, front_desk)
        patient = series.patient
        lot = TipLotFactory(clinic=clinic, received_by=provider)
        desk, chair = api(front_desk), api(provider)

        def book(starts_at):
            body = {"series": str(series.id), "provider": str(provider.id)}
            response = desk.post("/api/v1/sessions/", {**body, "starts_at": starts_at.isoformat()})
            assert response.status_code == 201, response.content
            return response.json()["id"]

        a = book(T + timedelta(minutes=30))
        assert (
            desk.post(
                f"/api/v1/sessions/{a}/reschedule/",
                {"starts_at": (T + timedelta(hours=1)).isoformat()},
            ).status_code
            == 200
        )
        assert desk.post(f"/api/v1/sessions/{a}/check-in/", ATTESTED).status_code == 200
        treated = chair.post(f"/api/v1/sessions/{a}/treatment/", treatment_body(lot))
        assert treated.status_code == 201, treated.content
        record = treated.json()["id"]
        amended = chair.post(
            f"/api/v1/sessions/{a}/treatment/amendments/", {"reason": "Typo", "notes": "Fine."}
        )
        assert amended.status_code == 201, amended.content
        b = book(T + timedelta(days=30))
        assert desk.post(f"/api/v1/sessions/{b}/cancel/", {"reason": "Away"}).status_code == 200
        c = book(T + timedelta(days=60))
        assert desk.post(f"/api/v1/sessions/{c}/no-show/").status_code == 200
        recall = api(admin).post(f"/api/v1/tip-lots/{lot.id}/recall/", {"reason": "FDA"})
        assert recall.status_code == 200

        assert drain() == {"delivered": 11}
        deliveries = [r.verified(hook.secret) for r in received(receiver)]

    ids = {"clinic": str(clinic.id)}
    session = {**ids, "series": str(series.id), "patient": str(patient.id)}
    session |= {"provider": str(provider.id), "room": None}
    expected = [
        ("session.booked", {"id": a, **session}),
        ("session.rescheduled", {"id": a, **session}),
        ("session.checked_in", {"id": a, **session}),
        ("session.completed", {"id": a, **session}),
        (
            "treatment.recorded",
            {
                "id": record,
                **ids,
                "session": a,
                "series": str(series.id),
                "patient": str(patient.id),
                "provider": str(provider.id),
                "tip_lot": str(lot.id),
            },
        ),
        (
            "treatment.amended",
            {
                "id": record,
                **ids,
                "amendment": amended.json()["id"],
                "session": a,
                "patient": str(patient.id),
            },
        ),
        ("session.booked", {"id": b, **session}),
        ("session.cancelled", {"id": b, **session}),
        ("session.booked", {"id": c, **session}),
        ("session.no_show", {"id": c, **session}),
        ("tip_lot.recalled", {"id": str(lot.id), **ids}),
    ]
    assert _sorted((d["type"], d["data"]) for d in deliveries) == _sorted(expected)
    assert {set(d) == {"type", "timestamp", "data"} for d in deliveries} == {True}
    bodies = " ".join(r.body for r in received(receiver))
    for private in (
        patient.first_name,
        patient.last_name,
        patient.email,
        patient.phone,
        "Tolerated well",
        "cheeks",
        lot.lot_number,
        "FDA",
        "Away",
    ):
        assert private not in bodies
    assert len({r.headers["Webhook-Id"] for r in received(receiver)}) == 11
    assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {("delivered", 1)}


def _sorted(pairs):
    return sorted(pairs, key=str)


@pytest.mark.django_db
def test_the_last_session_completes_the_series(clinic, front_desk, provider, hook, receiver):
    series = a_series(clinic, front_desk, planned_sessions=3)
    for days in (60, 30):
        at = timezone.now() - timedelta(days=days)
        SessionFactory(
            series=series,
            provider=provider,
            starts_at=at,
            ends_at=at + timedelta(hours=1),
            status=SessionStatus.COMPLETED,
            completed_at=at,
        )
    last = SessionFactory(
        series=series,
        provider=provider,
        starts_at=timezone.now() - timedelta(hours=1),
        ends_at=timezone.now(),
        status=SessionStatus.CHECKED_IN,
    )

    scheduling_services.complete_session(actor=provider, session=last, performed_at=timezone.now())

    assert drain() == {"delivered": 2}
    got = sorted((r.json["type"], r.json["data"]["id"]) for r in received(receiver))
    assert got == [("series.completed", str(series.id)), ("session.completed", str(last.id))]
    completed = next(r for r in received(receiver) if r.json["type"] == "series.completed")
    assert completed.verified(hook.secret)["data"] == {
        "id": str(series.id),
        "clinic": str(clinic.id),
        "patient": str(series.patient_id),
    }


@pytest.mark.django_db
def test_only_subscribed_live_endpoints_of_the_clinic_get_the_event(
    clinic, front_desk, provider, make_user, receiver
):
    cancels_only = WebhookEndpointFactory(
        clinic=clinic, url=receiver.url_for("/hook"), events=["session.cancelled"]
    )
    WebhookEndpointFactory(clinic=clinic, active=False, deleted_at=timezone.now())
    other = make_user(Role.PROVIDER)  # another clinic, with its own endpoint
    WebhookEndpointFactory(clinic=other.clinic, url=receiver.url_for("/hook"))
    series = a_series(clinic, front_desk)

    session = scheduling_services.book_session(
        actor=front_desk,
        series=series,
        provider=provider,
        starts_at=timezone.now() + timedelta(days=3),
    )
    scheduling_services.cancel_session(actor=front_desk, session=session)

    assert list(WebhookDelivery.objects.values_list("endpoint", "event_type")) == [
        (cancels_only.id, "session.cancelled")
    ]


@pytest.mark.django_db
def test_a_change_rolled_back_leaves_no_delivery(clinic, front_desk, provider, hook):
    series = a_series(clinic, front_desk)
    with pytest.raises(RuntimeError), transaction.atomic():
        scheduling_services.book_session(
            actor=front_desk,
            series=series,
            provider=provider,
            starts_at=timezone.now() + timedelta(days=3),
        )
        assert WebhookDelivery.objects.count() == 1
        raise RuntimeError("the request failed after booking")
    assert WebhookDelivery.objects.count() == 0


@pytest.mark.django_db
def test_with_the_broker_down_the_change_succeeds_and_the_scan_sends(
    clinic, front_desk, provider, hook, receiver, django_capture_on_commit_callbacks
):
    series = a_series(clinic, front_desk)
    with (
        override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        scheduling_services.book_session(
            actor=front_desk,
            series=series,
            provider=provider,
            starts_at=timezone.now() + timedelta(days=3),
        )
    assert WebhookDelivery.objects.get().status == "pending"

    assert tasks.scan_webhooks.apply().get() == {"reclaimed": 0, "send_delivered": 1}
    assert [r.json["type"] for r in received(receiver)] == ["session.booked"]


@pytest.mark.django_db
def test_a_500_is_retried_with_the_same_webhook_id(hook, httpserver):
    httpserver.clear()
    httpserver.expect_oneshot_request("/hook").respond_with_data("boom", status=500)
    httpserver.expect_request("/hook").respond_with_data("ok")
    delivery = WebhookDeliveryFactory(endpoint=hook)

    with time_machine.travel(timezone.now(), tick=False) as traveller:
        assert drain() == {"retry": 1}
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
            "pending",
            1,
            500,
        )
        # The first retry within 60 s: 30 s by default, then 60, 120...
        assert delivery.next_attempt_at == timezone.now() + timedelta(seconds=30)
        traveller.shift(29)
        assert drain() == {}
        traveller.shift(2)
        assert drain() == {"delivered": 1}
        first, second = received(httpserver)
        assert first.headers["Webhook-Id"] == second.headers["Webhook-Id"] == delivery.message_id
        assert (
            int(second.headers["Webhook-Timestamp"]) - int(first.headers["Webhook-Timestamp"]) == 31
        )
        assert first.verified(hook.secret) == second.verified(hook.secret)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)


@pytest.mark.django_db
@override_settings(WEBHOOK_MAX_ATTEMPTS=3)
def test_after_the_last_try_the_delivery_fails(hook, httpserver):
    httpserver.clear()
    httpserver.expect_request("/hook").respond_with_data("no", status=503)
    delivery = WebhookDeliveryFactory(endpoint=hook)

    with time_machine.travel(timezone.now(), tick=False) as traveller:
        assert drain() == {"retry": 1}
        traveller.shift(30)
        assert drain() == {"retry": 1}
        traveller.shift(60)  # doubled
        assert drain() == {"failed": 1}
        traveller.shift(3600)
        assert drain() == {}
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 3, 503)
    assert len(httpserver.log) == 3
    event = AuditEvent.objects.get(action="webhook.deliver")
    assert (event.outcome, event.object_id) == ("failed", str(delivery.id))


@pytest.mark.django_db
def test_a_redirect_is_not_followed(hook, httpserver):
    httpserver.clear()
    httpserver.expect_request("/hook").respond_with_response(
        Response(status=302, headers={"Location": httpserver.url_for("/elsewhere")})
    )
    httpserver.expect_request("/elsewhere").respond_with_data("ok")
    delivery = WebhookDeliveryFactory(endpoint=hook)

    assert drain() == {"retry": 1}
    assert [request.path for request, _ in httpserver.log] == ["/hook"]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code) == ("pending", 302)


@pytest.mark.django_db
@override_settings(WEBHOOK_TIMEOUT_SECONDS=0.2)
def test_a_slow_receiver_times_out_and_is_retried(hook, httpserver):
    httpserver.clear()

    answer = threading.Event()

    def slow(request):
        answer.wait(5)
        return Response("late")

    httpserver.expect_request("/hook").respond_with_handler(slow)
    delivery = WebhookDeliveryFactory(endpoint=hook)

    started = time.monotonic()
    assert drain() == {"retry": 1}
    assert time.monotonic() - started < 1
    answer.set()
    while not httpserver.log:  # the receiver's thread ends before the next test starts
        time.sleep(0.01)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code) == ("pending", None)
    assert delivery.last_error.startswith("ReadTimeout")


@pytest.mark.django_db
def test_the_task_run_twice_sends_once(hook, receiver):
    delivery = WebhookDeliveryFactory(endpoint=hook)

    first = tasks.send_webhook.apply(kwargs={"delivery_id": str(delivery.id)}).get()
    again = tasks.send_webhook.apply(kwargs={"delivery_id": str(delivery.id)}).get()

    assert (first, again) == ("delivered", "not_claimed")
    assert len(receiver.log) == 1
    assert tasks.send_webhook.apply(kwargs={"delivery_id": "nope"}).get() == "missing"


@pytest.mark.django_db
def test_a_claim_whose_worker_died_is_reclaimed_and_sent(hook, receiver):
    delivery = WebhookDeliveryFactory(
        endpoint=hook,
        status="sending",
        attempts=1,
        claimed_at=timezone.now() - timedelta(seconds=121),
    )
    fresh = WebhookDeliveryFactory(
        endpoint=hook, status="sending", attempts=1, claimed_at=timezone.now()
    )

    assert tasks.scan_webhooks.apply().get() == {"reclaimed": 1, "send_delivered": 1}

    assert [r.headers["Webhook-Id"] for r in received(receiver)] == [delivery.message_id]
    fresh.refresh_from_db()
    assert fresh.status == "sending"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("http://{host}/hook", "URL refused: must be https"),
        (
            "https://localhost:{port}/hook",
            "URL refused: localhost resolves to a refused address"
            " (127.0.0.1 is a loopback address)",
        ),
    ],
)
def test_in_production_the_guard_refuses_at_send_time_too(admin, httpserver, path, reason):
    url = path.format(host=f"{httpserver.host}:{httpserver.port}", port=httpserver.port)
    endpoint = WebhookEndpointFactory(clinic=admin.clinic, url=url)  # registered in development
    delivery = WebhookDeliveryFactory(endpoint=endpoint)

    with override_settings(WEBHOOK_ALLOW_PRIVATE_URLS=False, DEBUG=False):
        assert drain() == {"failed": 1}

    assert httpserver.log == []
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 1, reason)
