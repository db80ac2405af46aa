"""Every list endpoint of the API answers a page of 1 item and a page of 3 with the same, pinned,
number of queries (pytest-django's django_assert_num_queries): a count that grows with the page
is an N+1 to fix in the code, and a count that changes at all is a change to look at and re-pin.

The list endpoints are the GET operations whose answer is the paginated envelope in the OpenAPI
schema (generated from the URL patterns); test_every_list_endpoint_has_a_pinned_count fails when
one has no entry here. Each entry makes its items with what its serializer reads (a series with
sessions, a record with depths, ...), so a relation read per row shows as a growing count.

What a count is made of, typically: the bearer token with its user and their clinic (one
query), the page itself (its rows and one more, no COUNT: clinic.api.pagination), then what the
endpoint adds: a related list prefetched, and one insert of the audit events of a read of
patient data (one row per listed item, in one statement)."""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property, lru_cache

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from clinic import audit
from clinic.models import Clinic, Role, User
from scheduling.models import Series, Session
from scheduling.notifications.models import InboundMessage
from tests.factories import (
    HandpieceFactory,
    PatientFactory,
    RoomFactory,
    ScreeningFactory,
    SeriesFactory,
    SessionFactory,
    TipLotFactory,
    UserFactory,
)
from tests.factories.notifications import NotificationFactory
from tests.factories.scheduling import checked_in_fields, starts_today
from tests.factories.webhooks import WebhookDeliveryFactory, WebhookEndpointFactory
from treatments import recalls
from treatments.models import AftercareTemplate, ConsentForm


class World:
    """The clinic and, made on first use, its staff and the things several entries need."""

    def __init__(self, clinic: Clinic, make_user: Callable[..., User], api) -> None:
        self.clinic = clinic
        self._make_user = make_user
        self._api = api

    @cached_property
    def admin(self) -> User:
        return self._make_user(Role.ADMIN, self.clinic)

    @cached_property
    def front_desk(self) -> User:
        return self._make_user(Role.FRONT_DESK, self.clinic)

    @cached_property
    def provider(self) -> User:
        return self._make_user(Role.PROVIDER, self.clinic)

    @cached_property
    def auditor(self) -> User:
        return self._make_user(Role.AUDITOR, self.clinic)

    def client(self, role: str) -> APIClient:
        return self._api(getattr(self, role))

    @cached_property
    def patient(self):
        return self.eligible_patient()

    def eligible_patient(self):
        patient = PatientFactory(clinic=self.clinic)
        ScreeningFactory(patient=patient, screened_by=self.front_desk, screened_on=self.today)
        return patient

    @property
    def today(self):
        return timezone.localdate(timezone=self.clinic.zone)

    @cached_property
    def _starts(self):
        return starts_today(self.clinic)

    def series(self, patient=None) -> Series:
        return SeriesFactory(patient=patient or self.eligible_patient(), created_by=self.front_desk)

    def session(self, series: Series | None = None, *, starts_at=None, **kwargs) -> Session:
        starts_at = starts_at or next(self._starts)
        return SessionFactory(
            series=series or self.series(),
            provider=self.provider,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=1),
            created_by=self.front_desk,
            **kwargs,
        )

    def consent_form(self, n: int) -> ConsentForm:
        body = f"I consent to treatment {n}."
        return ConsentForm.objects.create(
            clinic=self.clinic,
            title=f"Form {n}",
            body=body,
            sha256=hashlib.sha256(body.encode()).hexdigest(),
            created_by=self.admin,
        )


@dataclass(frozen=True)
class Entry:
    """A list endpoint: the role that lists, how to make `n` items (answers the URL to get),
    the queries its page costs, and how many more rows than `n` it lists (the reader)."""

    path: str
    role: str
    make: Callable[[World, int], str]
    queries: int
    variant: str = ""
    extra: int = 0

    @property
    def id(self) -> str:
        return self.path + (f"?{self.variant}" if self.variant else "")


def make_aftercare_templates(w: World, n: int) -> str:
    for i in range(n):
        AftercareTemplate.objects.create(
            clinic=w.clinic,
            name=f"Template {i}",
            steps=[{"day_offset": 0, "product": "Skinfuse Rescue", "instruction": "Apply."}],
        )
    return "/api/v1/aftercare-templates/"


def make_audit_events(w: World, n: int) -> str:
    for _ in range(n):
        patient = PatientFactory(clinic=w.clinic)
        audit.record(
            actor=w.front_desk,
            action="patient.read",
            object_type="patient",
            object_id=patient.id,
            patient_id=patient.id,
        )
    return "/api/v1/audit-events/"


def make_consent_forms(w: World, n: int) -> str:
    for i in range(n):
        w.consent_form(i)
    return "/api/v1/consent-forms/"


def make_handpieces(w: World, n: int) -> str:
    HandpieceFactory.create_batch(n, clinic=w.clinic)
    return "/api/v1/handpieces/"


def make_inbound_messages(w: World, n: int) -> str:
    for i in range(n):
        session = w.session()
        patient = session.series.patient
        InboundMessage.objects.create(
            clinic=w.clinic,
            patient=patient,
            session=session,
            message_id=f"m-{i}",
            sender=patient.phone,
            body="C",
            action="none",
            received_at=timezone.now(),
        )
    return "/api/v1/inbound-messages/"


def make_notifications(w: World, n: int) -> str:
    for _ in range(n):
        session = w.session()
        NotificationFactory(patient=session.series.patient, session=session)
    return "/api/v1/notifications/"


def make_patients(w: World, n: int) -> str:
    for _ in range(n):
        w.eligible_patient()
    return "/api/v1/patients/"


def make_consents(w: World, n: int) -> str:
    client = w.client("front_desk")
    url = f"/api/v1/patients/{w.patient.id}/consents/"
    for i in range(n):
        body = {"consent_form": str(w.consent_form(i).id), "signature_name": "Ana Ruiz"}
        assert client.post(url, body, format="json").status_code == 201
    return url


def make_screenings(w: World, n: int) -> str:
    patient = PatientFactory(clinic=w.clinic)
    for days in range(n):
        ScreeningFactory(
            patient=patient, screened_by=w.front_desk, screened_on=w.today - timedelta(days=days)
        )
    return f"/api/v1/patients/{patient.id}/screenings/"


def make_recall_notices(w: World, n: int) -> str:
    for i in range(n):
        lot = TipLotFactory(clinic=w.clinic, received_by=w.provider, lot_number=f"SP24{i:02d}")
        recalls.record_recall(
            recalls.recall_feed.FeedRecall(
                source_id=f"9301{i}",
                code_info=lot.lot_number,
                reason="Sterility",
                product_description="Cartridge",
                record={},
            )
        )
    return "/api/v1/recall-notices/"


def make_rooms(w: World, n: int) -> str:
    RoomFactory.create_batch(n, clinic=w.clinic)
    return "/api/v1/rooms/"


def make_series(w: World, n: int) -> str:
    for i in range(n):
        series = w.series()
        done, next_one = (
            timezone.now() - timedelta(days=20 + i),
            timezone.now() + timedelta(days=30 + i),
        )
        w.session(series, starts_at=done, status="completed")
        w.session(series, starts_at=next_one)
    return "/api/v1/series/"


def make_sessions(w: World, n: int) -> str:
    for _ in range(n):
        w.session(flags=["screening_expired"])
    return "/api/v1/sessions/"


def make_sessions_of_a_day(w: World, n: int) -> str:
    make_sessions(w, n)
    return f"/api/v1/sessions/?date={w.today.isoformat()}"


def make_staff(w: World, n: int) -> str:
    w.admin  # noqa: B018 (the reader, listed too: `extra`)
    UserFactory.create_batch(n, clinic=w.clinic, role=Role.PROVIDER)
    return "/api/v1/staff/"


def _time_off(w: World, n: int) -> None:
    client = w.client("admin")
    for i in range(n):
        starts_at = timezone.now() + timedelta(days=3 + i)
        body = {
            "provider": str(w.provider.id),
            "starts_at": starts_at.isoformat(),
            "ends_at": (starts_at + timedelta(hours=3)).isoformat(),
            "reason": "Training",
        }
        assert client.post("/api/v1/time-off/", body).status_code == 201


def make_time_off(w: World, n: int) -> str:
    _time_off(w, n)
    return "/api/v1/time-off/"


def make_time_off_of_a_provider(w: World, n: int) -> str:
    _time_off(w, n)
    return f"/api/v1/time-off/?provider={w.provider.id}&from={w.today.isoformat()}"


def make_tip_lots(w: World, n: int) -> str:
    TipLotFactory.create_batch(n, clinic=w.clinic, received_by=w.provider)
    return "/api/v1/tip-lots/"


def make_lot_usage(w: World, n: int) -> str:
    lot = TipLotFactory(clinic=w.clinic, received_by=w.provider, quantity_received=10)
    client = w.client("provider")
    for _ in range(n):
        session = w.session(**checked_in_fields(w.front_desk))
        body = {
            "tip_lot": str(lot.id),
            "depths": [
                {"area": "cheeks", "depth_mm": "1.25"},
                {"area": "forehead", "depth_mm": "0.5"},
            ],
        }
        response = client.post(f"/api/v1/sessions/{session.id}/treatment/", body, format="json")
        assert response.status_code == 201, response.content
    return f"/api/v1/tip-lots/{lot.id}/usage/"


def make_webhooks(w: World, n: int) -> str:
    for endpoint in WebhookEndpointFactory.create_batch(n, clinic=w.clinic, created_by=w.admin):
        WebhookDeliveryFactory.create_batch(2, endpoint=endpoint)
    return "/api/v1/webhooks/"


def make_webhook_deliveries(w: World, n: int) -> str:
    endpoint = WebhookEndpointFactory(clinic=w.clinic, created_by=w.admin)
    WebhookDeliveryFactory.create_batch(n, endpoint=endpoint)
    return f"/api/v1/webhooks/{endpoint.id}/deliveries/"


PINNED = [
    Entry("/api/v1/aftercare-templates/", "admin", make_aftercare_templates, 2),
    Entry("/api/v1/audit-events/", "auditor", make_audit_events, 3),
    Entry("/api/v1/consent-forms/", "admin", make_consent_forms, 2),
    Entry("/api/v1/handpieces/", "admin", make_handpieces, 2),
    Entry("/api/v1/inbound-messages/", "front_desk", make_inbound_messages, 3),
    Entry("/api/v1/notifications/", "admin", make_notifications, 3),
    Entry("/api/v1/patients/", "front_desk", make_patients, 3),
    Entry("/api/v1/patients/{id}/consents/", "front_desk", make_consents, 4),
    Entry("/api/v1/patients/{id}/screenings/", "front_desk", make_screenings, 4),
    Entry("/api/v1/recall-notices/", "admin", make_recall_notices, 2),
    Entry("/api/v1/rooms/", "admin", make_rooms, 2),
    Entry("/api/v1/series/", "front_desk", make_series, 3),
    Entry("/api/v1/sessions/", "front_desk", make_sessions, 3),
    Entry("/api/v1/sessions/", "front_desk", make_sessions_of_a_day, 3, variant="date"),
    Entry("/api/v1/staff/", "admin", make_staff, 2, extra=1),
    Entry("/api/v1/time-off/", "admin", make_time_off, 2),
    Entry("/api/v1/time-off/", "admin", make_time_off_of_a_provider, 2, variant="provider"),
    Entry("/api/v1/tip-lots/", "provider", make_tip_lots, 2),
    Entry("/api/v1/tip-lots/{id}/usage/", "provider", make_lot_usage, 4),
    Entry("/api/v1/webhooks/", "admin", make_webhooks, 2),
    Entry("/api/v1/webhooks/{id}/deliveries/", "admin", make_webhook_deliveries, 3),
]


@lru_cache(maxsize=1)
def list_endpoints() -> frozenset[str]:
    """The paths whose GET answers the paginated envelope, by the OpenAPI schema."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    found = set()
    for path, operations in schema["paths"].items():
        responses = operations.get("get", {}).get("responses", {})
        for content in responses.get("200", {}).get("content", {}).values():
            name = content["schema"].get("$ref", "").rsplit("/", 1)[-1]
            if {"results", "next", "previous"} <= components.get(name, {}).get(
                "properties", {}
            ).keys():
                found.add(path)
    return frozenset(found)


def test_every_list_endpoint_has_a_pinned_count():
    assert len(list_endpoints()) >= 19
    assert list_endpoints() == {entry.path for entry in PINNED}


@pytest.mark.django_db
@pytest.mark.parametrize("item_count", [1, 3])
@pytest.mark.parametrize("entry", PINNED, ids=lambda entry: entry.id)
def test_a_list_page_costs_a_pinned_number_of_queries(
    entry, item_count, clinic, make_user, api, django_assert_num_queries
):
    world = World(clinic, make_user, api)
    url = entry.make(world, item_count)
    client = world.client(entry.role)
    with django_assert_num_queries(entry.queries):
        response = client.get(url)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (len(body["results"]), body["next"], body["previous"]) == (
        item_count + entry.extra,
        None,
        None,
    )
