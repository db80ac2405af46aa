"""SMS replies: POST /api/v1/inbound/sms/ (the provider, no Bearer; the SMS backend checks its
signature) and GET /api/v1/inbound-messages/ (front desk, admin; audited as patient data)."""

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from clinic.api.base import PatientDataViewSet
from clinic.api.fields import CharField, ChoiceField, FilterSet, ModelSerializer, UUIDField
from clinic.errors import InvalidInput
from clinic.models import Role
from scheduling import channels
from scheduling.notifications import inbound
from scheduling.notifications.models import InboundMessage
from scheduling.rules import InboundAction

FRONT_DESK_AND_ADMIN = frozenset({Role.ADMIN, Role.FRONT_DESK})


class InboundSMSSerializer(serializers.Serializer):
    """The built-in protocol's body (a provider's adapter reads its own format)."""

    message_id = CharField(max_length=channels.INBOUND_ID_MAX_LENGTH)
    # `from` is a Python keyword: declared below.
    body = CharField(allow_blank=True)


InboundSMSSerializer._declared_fields["from"] = CharField(
    max_length=channels.INBOUND_SENDER_MAX_LENGTH
)


class AcceptedSerializer(serializers.Serializer):
    status = ChoiceField(choices=[("accepted", "accepted")])


class InboundSMSView(APIView):
    """A reply from a patient, as the SMS provider delivers it. Handled before the answer."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    # Never parsed by DRF: the backend reads the raw body, which its signature covers (JSON
    # for the built-in protocol, as documented; a provider's adapter reads its own format).
    parser_classes = [JSONParser]

    @extend_schema(
        summary="Receive an SMS reply (provider webhook)",
        tags=["inbound"],
        auth=[],
        request=InboundSMSSerializer,
        responses={200: AcceptedSerializer, 403: OpenApiResponse(description="Bad signature.")},
    )
    def post(self, request: Request) -> Response:
        backend = channels.get_sms_backend()
        message = channels.InboundRequest(
            url=request.build_absolute_uri(), body=request.body, headers=request.headers
        )
        if not backend.verify_inbound(message):
            raise PermissionDenied("The request's signature is missing or wrong.")
        try:
            sms = backend.parse_inbound(message)
        except channels.InboundInvalid as exc:
            raise InvalidInput(exc.errors) from exc
        inbound.receive(sms)
        return Response({"status": "accepted"})


class InboundMessageSerializer(ModelSerializer):
    patient = UUIDField(source="patient_id", read_only=True, allow_null=True)
    session = UUIDField(source="session_id", read_only=True, allow_null=True)

    class Meta:
        model = InboundMessage
        fields = ["id", "patient", "from", "body", "received_at", "action", "session"]
        read_only_fields = fields


InboundMessageSerializer._declared_fields["from"] = CharField(
    source="sender", read_only=True, help_text="The phone it came from (E.164 when it is one)."
)


class InboundMessageFilter(FilterSet):
    patient = filters.UUIDFilter(field_name="patient_id")
    session = filters.UUIDFilter(field_name="session_id")
    action = filters.ChoiceFilter(choices=InboundAction.choices)

    class Meta:
        model = InboundMessage
        fields: list[str] = []


class InboundMessageViewSet(PatientDataViewSet):
    """Every SMS reply from a patient of the clinic, newest first, with what was done."""

    queryset = InboundMessage.objects.order_by("-received_at", "-id")
    serializer_class = InboundMessageSerializer
    filterset_class = InboundMessageFilter
    read_roles = FRONT_DESK_AND_ADMIN
    # Writes are not offered at all: 405 (auditors 403, as everywhere).
    write_roles = FRONT_DESK_AND_ADMIN
    audit_object_type = "inbound_message"
