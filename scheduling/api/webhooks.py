"""Webhook endpoints and their deliveries: /api/v1/webhooks/ (read: admin, auditor; write:
admin). The signing secret is shown in the create response only."""

import uuid

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from clinic.api.base import ClinicScopedViewSet
from clinic.api.fields import CharField, ChoiceField, ModelSerializer, URLField
from clinic.api.permissions import ADMIN, AUDIT_READERS
from scheduling.webhooks import services
from scheduling.webhooks.models import WebhookDelivery, WebhookEndpoint
from scheduling.webhooks.rules import (
    PUBLIC_DELIVERY_STATUSES,
    URL_MAX_LENGTH,
    WebhookDeliveryStatus,
    WebhookEventType,
)


class WebhookSerializer(ModelSerializer):
    url = URLField(max_length=URL_MAX_LENGTH)
    events = serializers.ListField(
        child=ChoiceField(choices=WebhookEventType.choices), allow_empty=False
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "events", "active", "created_at"]
        read_only_fields = ["id", "active", "created_at"]


class WebhookCreatedSerializer(WebhookSerializer):
    secret = CharField(
        read_only=True,
        help_text="whsec_ + base64: verifies the webhook-signature header. Shown only here.",
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


@extend_schema_field(ChoiceField(choices=PUBLIC_DELIVERY_STATUSES))
class DeliveryStatusField(CharField):
    def to_representation(self, value):
        return WebhookDeliveryStatus.PENDING if value == WebhookDeliveryStatus.SENDING else value


class WebhookDeliverySerializer(ModelSerializer):
    status = DeliveryStatusField(read_only=True)
    webhook_id = CharField(
        source="message_id", read_only=True, help_text="The webhook-id header, on every try."
    )

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_type",
            "status",
            "attempts",
            "last_status_code",
            "delivered_at",
            "webhook_id",
            "next_attempt_at",
            "created_at",
        ]
        read_only_fields = fields


class WebhookViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    ClinicScopedViewSet,
):
    """Endpoints that receive the clinic's events, signed as Standard Webhooks says."""

    queryset = WebhookEndpoint.objects.filter(deleted_at__isnull=True).order_by("created_at", "id")
    serializer_class = WebhookSerializer
    read_roles = AUDIT_READERS
    write_roles = ADMIN

    @extend_schema(request=WebhookSerializer, responses={201: WebhookCreatedSerializer})
    def create(self, request: Request) -> Response:
        body = WebhookSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint = services.register_endpoint(actor=request.user, **body.validated_data)
        return Response(WebhookCreatedSerializer(endpoint).data, status=201)

    def perform_destroy(self, instance: WebhookEndpoint) -> None:
        services.delete_endpoint(actor=self.request.user, endpoint=instance)

    @extend_schema(responses={200: WebhookDeliverySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str) -> Response:
        endpoint = self.get_object()
        deliveries = WebhookDelivery.objects.filter(endpoint=endpoint).order_by(
            "-created_at", "-id"
        )
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)

    @extend_schema(request=None, responses={202: WebhookDeliverySerializer})
    @action(
        detail=True,
        methods=["post"],
        url_path=r"deliveries/(?P<delivery_id>[0-9a-fA-F-]{36})/redeliver",
    )
    def redeliver(self, request: Request, pk: str, delivery_id: str) -> Response:
        endpoint = self.get_object()
        try:
            delivery = WebhookDelivery.objects.get(endpoint=endpoint, pk=uuid.UUID(delivery_id))
        except (ValueError, WebhookDelivery.DoesNotExist) as exc:
            raise NotFound() from exc
        delivery = services.redeliver(actor=request.user, delivery=delivery)
        return Response(WebhookDeliverySerializer(delivery).data, status=202)
