"""The back office for scheduling data: SMS replies, read-only. A clinic admin sees their
clinic's; a superuser sees every reply, those from unknown phones (no clinic) included."""

from django.contrib import admin

from clinic.admin import ReadOnlyAdmin
from scheduling.notifications.models import InboundMessage


@admin.register(InboundMessage)
class InboundMessageAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "sender", "action", "clinic", "patient", "session")
    list_filter = ("action",)
    search_fields = ("sender", "message_id")
    date_hierarchy = "received_at"
