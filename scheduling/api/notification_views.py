"""GET /api/v1/notifications/: the outbox, read-only, for every role of the clinic."""

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema_field

from clinic.api.base import PatientDataViewSet
from clinic.api.fields import CharField, ChoiceField, FilterSet, ModelSerializer, UUIDField
from clinic.api.permissions import ALL_ROLES
from scheduling.notifications.models import (
    Channel,
    Notification,
    NotificationKind,
    NotificationStatus,
)

# The contract's statuses. `sending` (claimed by a worker this moment) is shown as pending.
PUBLIC_STATUSES = [
    (NotificationStatus.PENDING, "Pending"),
    (NotificationStatus.SENT, "Sent"),
    (NotificationStatus.FAILED, "Failed"),
    (NotificationStatus.SKIPPED, "Skipped"),
]


@extend_schema_field(ChoiceField(choices=PUBLIC_STATUSES))
class PublicStatusField(CharField):
    def to_representation(self, value):
        return NotificationStatus.PENDING if value == NotificationStatus.SENDING else value


class NotificationSerializer(ModelSerializer):
    patient = UUIDField(source="patient_id", read_only=True)
    session = UUIDField(source="session_id", read_only=True, allow_null=True)
    status = PublicStatusField(read_only=True)

    class Meta:
        model = Notification
        fields = [
            "id",
            "patient",
            "session",
            "kind",
            "channel",
            "status",
            "scheduled_for",
            "sent_at",
        ]
        read_only_fields = fields


class NotificationFilter(FilterSet):
    patient = filters.UUIDFilter(field_name="patient_id")
    session = filters.UUIDFilter(field_name="session_id")
    kind = filters.ChoiceFilter(choices=NotificationKind.choices)
    channel = filters.ChoiceFilter(choices=Channel.choices)
    status = filters.ChoiceFilter(choices=PUBLIC_STATUSES, method="filter_status")

    class Meta:
        model = Notification
        fields: list[str] = []

    def filter_status(self, queryset, name, value):
        if value == NotificationStatus.PENDING:
            return queryset.filter(
                status__in=[NotificationStatus.PENDING, NotificationStatus.SENDING]
            )
        return queryset.filter(status=value)


class NotificationViewSet(PatientDataViewSet):
    """Messages to patients: reminders, nudges, check-ins, re-screen requests, recalls.

    (The outbox's messages to staff, recall notices to admins, are not patients' and not
    listed here.)"""

    queryset = Notification.objects.filter(patient__isnull=False).order_by("-scheduled_for", "-id")
    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter
    read_roles = ALL_ROLES
    # Writes are not offered at all: every role gets 405 (auditors 403, as everywhere).
    write_roles = ALL_ROLES
    audit_object_type = "notification"
