"""`GET /api/v1/audit-events/`: the clinic's audit trail for auditors and admins.

Newest first, cursor-paginated on (at, id): a cursor stays right while events keep arriving at
the head, and every filter is served by one of AuditEvent's (clinic, x, -at) indexes.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins
from rest_framework.request import Request
from rest_framework.response import Response

from clinic import audit
from clinic.api.base import ClinicScopedViewSet
from clinic.api.fields import ROWS, DateOrDateTimeFilter, FilterSet, ModelSerializer, UUIDField
from clinic.api.pagination import CursorPagination
from clinic.api.permissions import AUDIT_READERS
from clinic.models import AuditEvent, AuditOutcome


class AuditEventSerializer(ModelSerializer):
    actor = UUIDField(source="actor_id", allow_null=True, read_only=True)
    patient = UUIDField(source="patient_id", allow_null=True, read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "actor",
            "actor_label",
            "action",
            "object_type",
            "object_id",
            "patient",
            "request_id",
            "outcome",
            "detail",
            "sequence",
            "hash",
        ]
        read_only_fields = fields


class AuditEventFilter(FilterSet):
    patient = filters.UUIDFilter(field_name="patient_id", help_text="Patient id.")
    actor = filters.UUIDFilter(field_name="actor_id", help_text="Staff id.")
    action = filters.CharFilter(field_name="action", help_text="e.g. patient.read, auth.login")
    since = DateOrDateTimeFilter(
        method="filter_since",
        help_text="Events at or after this ISO 8601 timestamp or date (clinic time if no offset).",
    )
    outcome = filters.ChoiceFilter(choices=AuditOutcome.choices)
    object_type = filters.CharFilter(field_name="object_type")

    class Meta:
        model = AuditEvent
        fields: list[str] = []

    def filter_since(self, queryset, name, value):
        clinic = self.request.user.clinic
        if not isinstance(value, datetime):
            value = clinic.day_bounds(value)[0]
        elif timezone.is_naive(value):
            value = timezone.make_aware(value, clinic.zone)
        return queryset.filter(at__gte=value)


class AuditCursorPagination(CursorPagination):
    """Newest first, on (at, id)."""

    ordering = ("-at", "-id")


class AuditEventViewSet(mixins.ListModelMixin, ClinicScopedViewSet):
    """Who read or changed what, when, with what outcome (auditor and admin only).

    `sequence` and `hash` are the event's link in the clinic's tamper-evident hash chain
    (`manage.py verify_audit` checks it)."""

    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    pagination_class = AuditCursorPagination
    read_roles = AUDIT_READERS
    audit_object_type = "audit_event"
    http_method_names = ["get", "head", "options"]

    @extend_schema(summary="The clinic's audit trail, newest first")
    def list(self, request: Request) -> Response:
        # Read-only rows: read as the serializer's columns, no event instance per row.
        serializer = self.get_serializer()
        rows = self.filter_queryset(self.get_queryset()).values(*serializer.columns())
        page = self.paginate_queryset(rows)
        # Who looked at the trail is itself on it (one event per page read).
        audit.record(
            actor=request.user,
            action="audit_event.list",
            object_type="audit_event",
            detail={
                "filters": {
                    key: request.query_params[key][:100]
                    for key in ("patient", "actor", "action", "since", "outcome", "object_type")
                    if key in request.query_params
                },
                "count": len(page),
            },
        )
        rows = self.get_serializer(
            page, many=True, context={**self.get_serializer_context(), ROWS: True}
        )
        return self.get_paginated_response(rows.data)
