"""The back office lists SMS replies: a clinic admin their clinic's, a superuser all of them,
those from unknown phones (no clinic) included."""

from datetime import UTC, datetime

import pytest
from django.contrib import admin as django_admin
from django.test import RequestFactory

from scheduling.notifications.models import InboundMessage
from tests.factories import ClinicFactory, UserFactory

T = datetime(2026, 3, 2, 15, tzinfo=UTC)


@pytest.mark.django_db
def test_unknown_phones_are_the_superusers_alone(admin, clinic):
    rows = {
        "mine": InboundMessage.objects.create(
            clinic=clinic, message_id="a", sender="+12025550143", action="none", received_at=T
        ),
        "theirs": InboundMessage.objects.create(
            clinic=ClinicFactory(), message_id="b", sender="+1202555", action="none", received_at=T
        ),
        "unknown": InboundMessage.objects.create(
            message_id="c", sender="+442079460123", action="none", received_at=T
        ),
    }
    model_admin = django_admin.site._registry[InboundMessage]
    superuser = UserFactory(clinic=clinic, is_superuser=True, is_staff=True)

    def seen(user):
        request = RequestFactory().get("/admin/scheduling/inboundmessage/")
        request.user = user
        ids = set(model_admin.get_queryset(request).values_list("id", flat=True))
        return sorted(name for name, row in rows.items() if row.id in ids)

    assert seen(admin) == ["mine"]
    assert seen(superuser) == ["mine", "theirs", "unknown"]
    assert not model_admin.has_change_permission(RequestFactory().get("/"), rows["mine"])
