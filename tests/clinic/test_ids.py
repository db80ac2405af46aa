"""Time-ordered primary keys (clinic/ids.py) for the rows that accumulate."""

import time
import uuid

import pytest
from django.apps import apps
from django.db import models

from clinic.ids import time_ordered_uuid
from tests.factories import SessionFactory

TIME_ORDERED = {
    "clinic.AuditEvent",
    "patients.Screening",
    "scheduling.Series",
    "scheduling.Session",
    "scheduling.Notification",
    "scheduling.InboundMessage",
    "scheduling.WebhookDelivery",
    "treatments.TreatmentRecord",
    "treatments.TreatmentAmendment",
    "treatments.AftercarePlan",
    "treatments.Consent",
    "treatments.RecallNotice",
}


def test_a_time_ordered_uuid_is_a_plain_uuid7_of_now():
    before = time.time_ns() // 1_000_000
    drawn = time_ordered_uuid()
    after = time.time_ns() // 1_000_000
    assert type(drawn) is uuid.UUID
    assert (drawn.version, drawn.variant) == (7, uuid.RFC_4122)
    assert before <= drawn.int >> 80 <= after


def test_later_ids_sort_after_earlier_ones():
    drawn = []
    for _ in range(5):
        drawn.append(time_ordered_uuid())
        time.sleep(0.002)
    assert drawn == sorted(drawn) and len(set(drawn)) == 5


def test_which_models_have_time_ordered_ids():
    """A new model with a UUID key decides which kind it has: this list is the decision."""
    uuid_keyed = {
        model._meta.label: model._meta.pk.default
        for model in apps.get_models()
        if isinstance(model._meta.pk, models.UUIDField) and model._meta.app_label != "knox"
    }
    assert {label for label, default in uuid_keyed.items() if default is time_ordered_uuid} == (
        TIME_ORDERED
    )
    random = {default for label, default in uuid_keyed.items() if label not in TIME_ORDERED}
    assert random == {uuid.uuid4}


@pytest.mark.django_db
def test_a_booked_session_has_a_time_ordered_id():
    session = SessionFactory()
    assert session.id.version == 7
    assert session.series.id.version == 7
    assert session.patient.id.version == 4


def test_many_ids_in_one_millisecond_do_not_run_ahead_of_the_clock():
    """A burst (a treatment's or a page's rows) stays in order at the clock's own time."""
    drawn = [time_ordered_uuid() for _ in range(5000)]
    now = time.time_ns() // 1_000_000
    assert drawn == sorted(drawn)
    assert now - 1000 <= drawn[-1].int >> 80 <= now


def test_the_clock_is_the_systems_not_a_travelled_one():
    import time_machine

    with time_machine.travel("2030-01-01", tick=False):
        time_ordered_uuid()
    assert abs((time_ordered_uuid().int >> 80) - time.time_ns() // 1_000_000) < 1000
