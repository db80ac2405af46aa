from django.utils import timezone
from rest_framework import mixins
from rest_framework.request import Request
from rest_framework.response import Response

from clinic.api.base import ClinicScopedViewSet
from clinic.api.permissions import ADMIN, ALL_ROLES, PROVIDERS
from treatments import services
from treatments.api.serializers import AftercareTemplateSerializer, TipLotSerializer
from treatments.models import AftercareTemplate, TipLot


class TipLotViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ClinicScopedViewSet):
    """Cartridge lots in stock. Status is derived: recalled, exhausted, expired or active."""

    queryset = TipLot.objects.all()
    serializer_class = TipLotSerializer
    read_roles = ALL_ROLES
    write_roles = PROVIDERS

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        context["today"] = timezone.localdate(timezone=self.request.user.clinic.zone)
        return context

    def create(self, request: Request) -> Response:
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        lot = services.receive_tip_lot(actor=request.user, **body.validated_data)
        return Response(self.get_serializer(lot).data, status=201)


class AftercareTemplateViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, ClinicScopedViewSet
):
    """The clinic's aftercare protocols; the default one is snapshotted into each new plan."""

    queryset = AftercareTemplate.objects.all()
    serializer_class = AftercareTemplateSerializer
    read_roles = ALL_ROLES
    write_roles = ADMIN
    http_method_names = ["get", "post", "patch", "head", "options"]

    def create(self, request: Request) -> Response:
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        template = services.create_aftercare_template(actor=request.user, **body.validated_data)
        return Response(self.get_serializer(template).data, status=201)

    def partial_update(self, request: Request, pk: str) -> Response:
        template = self.get_object()
        body = self.get_serializer(template, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        template = services.update_aftercare_template(
            actor=request.user, template=template, changes=dict(body.validated_data)
        )
        return Response(self.get_serializer(template).data)
