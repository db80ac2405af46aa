"""One clinic with one of everything, so that every path parameter of the API has an object to
find, a real bearer token per role, and a second clinic with one user per role. The endpoint
matrix (tests/clinic/test_endpoint_matrix.py), the every-endpoint checks
(tests/clinic/test_every_endpoint.py) and schemathesis (tests/fuzz/) all run against it.

What the API can make is made through the API (a treatment recorded by its provider, a time
off, a signed consent, a webhook), so the world is one the API itself could be in; the rest
(a booked session, a recall notice, a notification, an SMS reply, a webhook delivery) is
written directly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from clinic.models import Clinic, Role, User
from scheduling import timetable_services
from scheduling.notifications.models import InboundMessage
from scheduling.webhooks.models import WebhookEndpoint
from tests.factories import (
    ClinicFactory,
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
from tests.factories.webhooks import WebhookDeliveryFactory
from treatments.models import AftercareTemplate, ConsentForm, RecallNotice

ROLES = [Role.ADMIN, Role.FRONT_DESK, Role.PROVIDER, Role.AUDITOR]


@dataclass
class World:
    clinic: Clinic
    other_clinic: Clinic
    users: dict[str, User]  # one per role, in `clinic`
    strangers: dict[str, User]  # one per role, in `other_clinic`
    tokens: dict[str, str]  # a bearer token of each of `users`
    ids: dict[str, Any]  # the objects' ids (str), by kind

    def token(self, role: str) -> str:
        return self.tokens[role]

    def fresh_token(self, role: str) -> str:
        """A token of its own, for a call that ends it (logout)."""
        _instance, token = AuthToken.objects.create(user=self.users[role])
        return token

    def client(self, role: str | None) -> APIClient:
        """An API client with the role's token (none for None)."""
        client = APIClient()
        if role is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.tokens[role]}")
        return client


def _created(response) -> dict:
    assert response.status_code == 201, response.content
    return response.json()


def build_world() -> World:
    clinic = ClinicFactory(timezone="America/New_York")
    other_clinic = ClinicFactory(name="Elsewhere Aesthetics")
    users = {role: UserFactory(role=role, clinic=clinic) for role in ROLES}
    strangers = {role: UserFactory(role=role, clinic=other_clinic) for role in ROLES}
    admin, front_desk, provider = users[Role.ADMIN], users[Role.FRONT_DESK], users[Role.PROVIDER]
    tokens = {role: AuthToken.objects.create(user=user)[1] for role, user in users.items()}
    world = World(clinic, other_clinic, users, strangers, tokens, ids={})

    def post(role: str, path: str, body: dict) -> dict:
        return _created(world.client(role).post(path, body, format="json"))

    patient = PatientFactory(clinic=clinic)
    ScreeningFactory(patient=patient, screened_by=front_desk, screened_on=clinic.today())
    series = SeriesFactory(patient=patient, created_by=front_desk)
    # A patient in the chair now, checked in, treated by their provider: a completed session
    # with a treatment record, its depths and its aftercare plan.
    starts_at = next(starts_today(clinic))
    treated = SessionFactory(
        series=series,
        provider=provider,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=1),
        **checked_in_fields(front_desk),
        created_by=front_desk,
    )
    lot = TipLotFactory(clinic=clinic, received_by=provider, quantity_received=50)
    post(
        Role.PROVIDER,
        f"/api/v1/sessions/{treated.id}/treatment/",
        {"tip_lot": str(lot.id), "depths": [{"area": "cheeks", "depth_mm": "1.0"}]},
    )
    # A session still to come, booked.
    session = SessionFactory(series=series, provider=provider, created_by=front_desk)
    other_lot = TipLotFactory(clinic=clinic, received_by=provider, quantity_received=50)
    notice = RecallNotice.objects.create(
        clinic=clinic, tip_lot=other_lot, source="openfda", source_id="Z-1", lot_number="L"
    )
    room = RoomFactory(clinic=clinic)
    handpiece = HandpieceFactory(clinic=clinic)
    time_off = post(
        Role.ADMIN,
        "/api/v1/time-off/",
        {
            "room": str(room.id),
            "starts_at": (starts_at + timedelta(days=30)).isoformat(),
            "ends_at": (starts_at + timedelta(days=31)).isoformat(),
        },
    )
    form = ConsentForm.objects.create(
        clinic=clinic,
        title="Microneedling",
        body="I consent.",
        sha256=hashlib.sha256(b"I consent.").hexdigest(),
        created_by=admin,
    )
    consent = post(
        Role.FRONT_DESK,
        f"/api/v1/patients/{patient.id}/consents/",
        {"consent_form": str(form.id), "signature_name": "P. Patient"},
    )
    webhook = post(
        Role.ADMIN,
        "/api/v1/webhooks/",
        {"url": "https://hooks.example.com/in", "events": ["session.booked"]},
    )
    delivery = WebhookDeliveryFactory(
        endpoint=WebhookEndpoint.objects.get(pk=webhook["id"]), status="failed"
    )
    notification = NotificationFactory(patient=patient)
    inbound = InboundMessage.objects.create(
        clinic=clinic, patient=patient, message_id="m-1", sender=patient.phone, body="Hi",
        action="none", received_at=timezone.now(),
    )  # fmt: skip
    template = AftercareTemplate.objects.filter(clinic=clinic, is_default=True).first() or (
        AftercareTemplate.objects.create(clinic=clinic, name="Skinfuse", is_default=True)
    )
    with transaction.atomic():
        feed_secret = timetable_services.rotate_calendar_feed(actor=admin, staff=provider)
    world.ids = {
        "provider": str(provider.id),
        "room": str(room.id),
        "handpiece": str(handpiece.id),
        "patient": str(patient.id),
        "series": str(series.id),
        "session": str(session.id),
        "treated_session": str(treated.id),
        "tip_lot": str(lot.id),
        "recall_notice": str(notice.id),
        "time_off": time_off["id"],
        "consent_form": str(form.id),
        "consent": consent["id"],
        "webhook": webhook["id"],
        "delivery": str(delivery.id),
        "notification": str(notification.id),
        "inbound_message": str(inbound.id),
        "aftercare_template": str(template.id),
        "feed_secret": feed_secret,
    }
    return world
