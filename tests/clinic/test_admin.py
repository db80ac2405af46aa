"""The back office writes rooms and handpieces through the same services as the API."""

import pytest
from django.test import Client

from clinic.models import AuditEvent, Handpiece, Room
from tests.clinic import totp
from tests.factories import PASSWORD, RoomFactory


@pytest.fixture
def back_office(admin) -> Client:
    """Signed in the way the back office demands: password and a TOTP code."""
    admin.is_staff = True
    admin.save()
    device = totp.enrol(admin)
    client = Client()
    signed_in = client.post(
        "/admin/login/",
        {"username": admin.username, "password": PASSWORD, "otp_token": totp.code(device)},
    )
    assert signed_in.status_code == 302, signed_in.content
    return client


@pytest.mark.django_db
def test_a_room_added_in_the_admin_is_the_services_room(back_office, admin, clinic):
    RoomFactory(clinic=clinic, name="Laser suite")
    refused = back_office.post(
        "/admin/clinic/room/add/", {"name": "LASER SUITE", "is_active": "on"}
    )
    assert refused.status_code == 200  # the form again, with the service's refusal
    assert refused.context["adminform"].form.errors == {
        "name": ["A room with this name already exists."]
    }

    added = back_office.post("/admin/clinic/room/add/", {"name": "Room 2", "is_active": "on"})
    assert added.status_code == 302
    room = Room.objects.get(name="Room 2")
    assert room.clinic_id == clinic.id
    event = AuditEvent.objects.get(action="room.create", object_id=room.id)
    assert (event.actor_id, event.detail) == (admin.id, {"via": "admin"})

    changed = back_office.post(f"/admin/clinic/room/{room.id}/change/", {"name": "Room 3"})
    assert changed.status_code == 302
    room.refresh_from_db()
    assert (room.name, room.is_active) == ("Room 3", False)
    event = AuditEvent.objects.get(action="room.update", object_id=room.id)
    assert event.detail == {"fields": ["is_active", "name"], "via": "admin"}


@pytest.mark.django_db
def test_a_handpiece_serial_is_unique_in_the_admin_too(back_office, clinic):
    assert (
        back_office.post("/admin/clinic/handpiece/add/", {"serial_number": "SP-1"}).status_code
        == 302
    )
    again = back_office.post("/admin/clinic/handpiece/add/", {"serial_number": "SP-1"})
    assert again.context["adminform"].form.errors == {
        "serial_number": ["A handpiece with this serial number exists."]
    }
    (handpiece,) = Handpiece.objects.all()
    assert (handpiece.clinic_id, handpiece.is_active) == (clinic.id, False)
