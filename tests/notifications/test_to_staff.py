"""Messages to staff in the outbox (recall notices to admins): one recipient, once, email only,
sent by the same claimed sender, never listed with the patients' notifications."""

import pytest
from django.core import mail
from django.db import IntegrityError, transaction

from clinic.models import Role
from scheduling.notifications import outbox, sender
from scheduling.notifications.models import Notification, NotificationKind
from scheduling.notifications.texts import register_staff_text

KIND = NotificationKind.RECALL_NOTICE


@pytest.fixture
def staff_text():
    register_staff_text(KIND, lambda n: ("Subject of " + n.subject_key, "Body text."))
    yield
    from treatments.recalls import notice_text

    register_staff_text(KIND, notice_text)


@pytest.mark.django_db
def test_a_staff_message_is_queued_once_and_sent_once(clinic, make_user, staff_text):
    admin = make_user(Role.ADMIN, clinic, email="ann@clinic.example", full_name="Ann Admin")
    first = outbox.queue_to_staff(kind=KIND, staff=admin, subject_key="s:1")
    again = outbox.queue_to_staff(kind=KIND, staff=admin, subject_key="s:1")
    assert ([(r.channel, r.status, r.staff_id, r.patient_id) for r in first], again) == (
        [("email", "pending", admin.id, None)],
        [],
    )
    assert sender.send_due()[sender.SENT] == 1
    assert sender.send_due()[sender.SENT] == 0
    (message,) = mail.outbox
    assert (message.to, message.subject) == (["ann@clinic.example"], "Subject of s:1")
    assert message.body == f"Hello Ann Admin,\n\nBody text.\n\n{clinic.name}\n"
    assert Notification.objects.get().status == "sent"


@pytest.mark.django_db
def test_staff_without_an_address_are_skipped(clinic, make_user, staff_text):
    admin = make_user(Role.ADMIN, clinic, email="")
    (row,) = outbox.queue_to_staff(kind=KIND, staff=admin, subject_key="s:1")
    assert (row.status, row.last_error) == ("skipped", "no email address")


@pytest.mark.django_db
def test_a_row_has_exactly_one_recipient(clinic, make_user, recipient):
    admin = make_user(Role.ADMIN, clinic, email="ann@clinic.example")
    (row,) = outbox.queue_to_staff(kind=KIND, staff=admin, subject_key="s:1")
    for change in ({"patient": recipient}, {"staff": None}):
        with (
            pytest.raises(IntegrityError, match="scheduling_notification_one_recipient"),
            transaction.atomic(),
        ):
            Notification.objects.filter(pk=row.pk).update(**change)


@pytest.mark.django_db
def test_staff_messages_are_not_listed_with_the_patients(clinic, make_user, api, recipient):
    admin = make_user(Role.ADMIN, clinic, email="ann@clinic.example")
    outbox.queue_to_staff(kind=KIND, staff=admin, subject_key="s:1")
    outbox.queue(kind="lot_recall", patient=recipient, subject_key="lot:1")
    listed = api(admin).get("/api/v1/notifications/").json()["results"]
    assert {(n["kind"], n["patient"]) for n in listed} == {("lot_recall", str(recipient.id))}
