"""A seeded clinic with one of everything, so every path parameter has an object to find, and
a real bearer token per role."""

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from knox.models import AuthToken
from rest_framework.test import APIClient

from clinic.models import Clinic, Role, User
from scheduling.webhooks.models import WebhookDelivery
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
from tests.factories.scheduling import checked_in_fields, starts_today
from treatments.models import AftercareTemplate, ConsentForm, RecallNotice

ROLES = [Role.ADMIN, Role.FRONT_DESK, Role.PROVIDER, Role.AUDITOR]


@dataclass
class World:
    clinic: Clinic
    users: dict[str, User]
    tokens: dict[str, str]
    ids: dict[str, str]

    def token(self, role: str) -> str:
        return self.tokens[role]

    def fresh_token(self, role: str) -> str:
        """A token of its own, for a call that ends it (logout)."""
        _instance, token = AuthToken.objects.create(user=self.users[role])
        return token


def build_world() -> World:
    clinic = ClinicFactory(timezone="America/New_York")
    users = {role: UserFactory(role=role, clinic=clinic) for role in ROLES}
    admin, front_desk, provider = users[Role.ADMIN], users[Role.FRONT_DESK], users[Role.PROVIDER]
    tokens = {role: AuthToken.objects.create(user=user)[1] for role, user in users.items()}

    def api(role: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens[role]}")
        return client

    patient = PatientFactory(clinic=clinic)
    ScreeningFactory(patient=patient, screened_by=front_desk, screened_on=clinic.today())
    series = SeriesFactory(patient=patient, created_by=front_desk)
    starts_at = next(starts_today(clinic))
    session = SessionFactory(
        series=series,
        provider=provider,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=1),
        **checked_in_fields(front_desk),
        created_by=front_desk,
    )
    lot = TipLotFactory(clinic=clinic, received_by=provider, quantity_received=50)
    recorded = api(Role.PROVIDER).post(
        f"/api/v1/sessions/{session.id}/treatment/",
        {"tip_lot": str(lot.id), "depths": [{"area": "cheeks", "depth_mm": "1.0"}]},
        format="json",
    )
    assert recorded.status_code == 201, recorded.content
    other_lot = TipLotFactory(clinic=clinic, received_by=provider, quantity_received=50)
    notice = RecallNotice.objects.create(
        clinic=clinic, tip_lot=other_lot, source="openfda", source_id="Z-1", lot_number="L"
    )
    room = RoomFactory(clinic=clinic)
    handpiece = HandpieceFactory(clinic=clinic)
    time_off = api(Role.ADMIN).post(
        "/api/v1/time-off/",
        {
            "room": str(room.id),
            "starts_at": (starts_at + timedelta(days=30)).isoformat(),
            "ends_at": (starts_at + timedelta(days=31)).isoformat(),
        },
        format="json",
    )
    assert time_off.status_code == 201, time_off.content
    form = ConsentForm.objects.create(
        clinic=clinic,
        title="Microneedling",
        body="I consent.",
        sha256=hashlib.sha256(b"I consent.").hexdigest(),
        created_by=admin,
    )
    consent = api(Role.FRONT_DESK).post(
        f"/api/v1/patients/{patient.id}/consents/",
        {"consent_form": str(form.id), "signature_name": "P. Patient"},
        format="json",
    )
    assert consent.status_code == 201, consent.content
    webhook = api(Role.ADMIN).post(
        "/api/v1/webhooks/",
        {"url": "https://hooks.example.com/in", "events": ["session.booked"]},
        format="json",
    )
    assert webhook.status_code == 201, webhook.content
    delivery = WebhookDelivery.objects.filter(endpoint_id=webhook.json()["id"]).first()
    template = AftercareTemplate.objects.filter(clinic=clinic).first()
    ids = {
        "patient": str(patient.id),
        "series": str(series.id),
        "session": str(session.id),
        "tip_lot": str(lot.id),
        "recall_notice": str(notice.id),
        "room": str(room.id),
        "handpiece": str(handpiece.id),
        "time_off": time_off.json()["id"],
        "consent_form": str(form.id),
        "consent": consent.json()["id"],
        "webhook": webhook.json()["id"],
        "delivery": str(delivery.id) if delivery else "",
        "aftercare_template": str(template.id) if template else "",
        "provider": str(provider.id),
    }
    return World(clinic=clinic, users=users, tokens=tokens, ids=ids)


# The object a path parameter names, by the path's first word (and the parameter's name).
_BY_PREFIX = {
    "patients": "patient",
    "fhir": "patient",
    "series": "series",
    "sessions": "session",
    "tip-lots": "tip_lot",
    "recall-notices": "recall_notice",
    "rooms": "room",
    "handpieces": "handpiece",
    "time-off": "time_off",
    "consent-forms": "consent_form",
    "webhooks": "webhook",
    "aftercare-templates": "aftercare_template",
    "staff": "provider",
}
_BY_NAME = {"consent_id": "consent", "delivery_id": "delivery"}


def object_id(world: World, path: str, name: str) -> str | None:
    """The seeded object's id for a path parameter, if the world has one."""
    key = _BY_NAME.get(name) or _BY_PREFIX.get(path.removeprefix("/api/v1/").split("/")[0])
    return world.ids.get(key) if key else None
