from typing import Any

import redis
from django.conf import settings
from django.db import connection
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from clinic import auth, services
from clinic.api.base import ClinicAPIView, ClinicScopedViewSet, CreateThroughServiceMixin
from clinic.api.fields import CharField, Serializer
from clinic.api.permissions import ADMIN, ALL_ROLES
from clinic.api.problems import (
    PROBLEM_CONTENT_TYPE,
    ProblemSerializer,
    problem_body,
    retry_after,
)
from clinic.api.serializers import (
    ClinicSerializer,
    HandpieceInputSerializer,
    HandpieceSerializer,
    RoomInputSerializer,
    RoomSerializer,
    StaffInputSerializer,
    StaffSerializer,
    TokenRequestSerializer,
    TokenSerializer,
)
from clinic.models import Handpiece, Room, User


class TokenView(ClinicAPIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=TokenRequestSerializer,
        parameters=[
            OpenApiParameter(
                auth.DEVICE_TOKEN_HEADER,
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=False,
                description="The device token of an earlier login (or the `device_token` field).",
            ),
            OpenApiParameter(
                auth.DEVICE_TOKEN_HEADER,
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                response=[200],
                description="A fresh device token for this user on this client: keep it and "
                "send it with the next login of this user (X-Device-Token or `device_token`).",
            ),
        ],
        responses={200: TokenSerializer},
        summary="Log in: exchange username and password (and TOTP code) for a bearer token",
    )
    def post(self, request: Request) -> Response:
        body = TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        issued = services.login(
            username=data["username"],
            password=data["password"],
            otp=data.get("otp") or None,
            device_token=data.get("device_token") or request.headers.get(auth.DEVICE_TOKEN_HEADER),
            client_address=auth.client_address(request),
        )
        # The contract's body is exactly {token, expires_at}: the device token is a header.
        return Response(
            TokenSerializer({"token": issued.token, "expires_at": issued.expires_at}).data,
            headers={auth.DEVICE_TOKEN_HEADER: issued.device_token},
        )


class LogoutView(ClinicAPIView):
    # Every signed-in user may revoke their own token, auditors included.
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None}, summary="Log out: revoke this token")
    def post(self, request: Request) -> Response:
        services.logout(user=request.user, token=request.auth)
        return Response(status=204)


class ClinicView(ClinicAPIView):
    read_roles = ALL_ROLES
    write_roles = ADMIN

    @extend_schema(responses={200: ClinicSerializer})
    def get(self, request: Request) -> Response:
        return Response(ClinicSerializer(request.user.clinic).data)

    @extend_schema(request=ClinicSerializer, responses={200: ClinicSerializer})
    def patch(self, request: Request) -> Response:
        body = ClinicSerializer(request.user.clinic, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        clinic = services.update_clinic(
            actor=request.user, clinic=request.user.clinic, changes=dict(body.validated_data)
        )
        return Response(ClinicSerializer(clinic).data)


@extend_schema_view(
    create=extend_schema(request=StaffInputSerializer, responses={201: StaffSerializer})
)
class StaffViewSet(
    CreateThroughServiceMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ClinicScopedViewSet
):
    queryset = User.objects.order_by("username")
    serializer_class = StaffSerializer
    read_roles = ALL_ROLES
    write_roles = ADMIN

    input_serializer_class = StaffInputSerializer
    create_service = staticmethod(services.create_staff)


@extend_schema_view(
    create=extend_schema(request=RoomInputSerializer, responses={201: RoomSerializer})
)
class RoomViewSet(
    CreateThroughServiceMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ClinicScopedViewSet
):
    queryset = Room.objects.all()
    serializer_class = RoomSerializer

    input_serializer_class = RoomInputSerializer
    create_service = staticmethod(services.create_room)


@extend_schema_view(
    create=extend_schema(request=HandpieceInputSerializer, responses={201: HandpieceSerializer})
)
class HandpieceViewSet(
    CreateThroughServiceMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ClinicScopedViewSet
):
    queryset = Handpiece.objects.all()
    serializer_class = HandpieceSerializer

    input_serializer_class = HandpieceInputSerializer
    create_service = staticmethod(services.create_handpiece)


class HealthSerializer(Serializer):
    database = CharField()
    broker = CharField()


class HealthView(APIView):
    """Liveness of the two things the service cannot work without. No auth."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            200: HealthSerializer,
            (503, PROBLEM_CONTENT_TYPE): OpenApiResponse(
                ProblemSerializer, description="`database` and `broker` say which part failed"
            ),
        }
    )
    def get(self, request: Request) -> Response:
        parts = {"database": self._database(), "broker": self._broker()}
        if all(state == "ok" for state in parts.values()):
            return Response(parts)
        failing = ", ".join(name for name, state in parts.items() if state != "ok")
        return Response(
            problem_body(503, "service_unavailable", f"Unavailable: {failing}.", **parts),
            status=503,
            content_type=PROBLEM_CONTENT_TYPE,
            headers={"Retry-After": retry_after()},
        )

    @staticmethod
    def _database() -> str:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception:
            return "unavailable"
        return "ok"

    @staticmethod
    def _broker() -> str:
        try:
            client = redis.Redis.from_url(
                settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1
            )
            client.ping()
        except redis.RedisError:
            return "unavailable"
        return "ok"
