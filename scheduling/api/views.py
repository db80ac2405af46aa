from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from clinic.api.base import PatientDataViewSet
from clinic.api.fields import BooleanFilter, DateFilter, FilterSet
from clinic.api.permissions import ALL_ROLES, CLINICAL_STAFF
from scheduling import selectors, services
from scheduling.api.serializers import (
    BookingSerializer,
    CheckInSerializer,
    RescheduleSerializer,
    SeriesCancelSerializer,
    SeriesSerializer,
    SessionCancelSerializer,
    SessionSerializer,
)
from scheduling.models import Series, Session
from scheduling.rules import SeriesStatus, SessionStatus


class SeriesFilter(FilterSet):
    patient = filters.UUIDFilter(field_name="patient_id")
    status = filters.ChoiceFilter(choices=SeriesStatus.choices)

    class Meta:
        model = Series
        fields: list[str] = []


class SessionFilter(FilterSet):
    date = DateFilter(
        method="filter_date",
        help_text="YYYY-MM-DD: sessions starting that day, clinic time.",
    )
    provider = filters.UUIDFilter(field_name="provider_id")
    patient = filters.UUIDFilter(field_name="patient_id")
    series = filters.UUIDFilter(field_name="series_id")
    room = filters.UUIDFilter(field_name="room_id")
    status = filters.MultipleChoiceFilter(
        choices=SessionStatus.choices, help_text="Repeat for several statuses."
    )
    flagged = BooleanFilter(
        method="filter_flagged", help_text="true: only sessions with flags; false: without."
    )

    class Meta:
        model = Session
        fields: list[str] = []

    def filter_date(self, queryset, name, value):
        return selectors.sessions_on_day(queryset, value, self.request.user.clinic)

    def filter_flagged(self, queryset, name, value):
        return queryset.exclude(flags=[]) if value else queryset.filter(flags=[])


class SeriesViewSet(PatientDataViewSet):
    """Treatment series: the plan of 3-6 sessions for one indication."""

    queryset = Series.objects.order_by("-created_at", "-id")
    serializer_class = SeriesSerializer
    filterset_class = SeriesFilter
    read_roles = ALL_ROLES
    write_roles = CLINICAL_STAFF
    audit_object_type = "series"
    compiled_retrieve = True

    @classmethod
    def scoped_queryset(cls, clinic_id):
        return selectors.series_with_progress(super().scoped_queryset(clinic_id))

    @extend_schema(responses={201: SeriesSerializer})
    def create(self, request: Request) -> Response:
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        series = services.create_series(actor=request.user, **body.validated_data)
        return self._respond(series, 201)

    @extend_schema(request=SeriesCancelSerializer, responses={200: SeriesSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        series = self.get_object()  # 404 before 400
        body = SeriesCancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        series = services.cancel_series(
            actor=request.user, series=series, reason=body.validated_data["reason"]
        )
        return self._respond(series)


class SessionViewSet(PatientDataViewSet):
    """Booked treatment sessions. Times are instants; `?date=` is a day in the clinic's zone."""

    queryset = Session.objects.order_by("starts_at", "id")
    serializer_class = SessionSerializer
    filterset_class = SessionFilter
    read_roles = ALL_ROLES
    write_roles = CLINICAL_STAFF
    audit_object_type = "session"

    compiled_retrieve = True

    @classmethod
    def scoped_queryset(cls, clinic_id):
        return selectors.sessions_with_number(super().scoped_queryset(clinic_id))

    @extend_schema(request=BookingSerializer, responses={201: SessionSerializer})
    def create(self, request: Request) -> Response:
        body = BookingSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        session = services.book_session(actor=request.user, **body.validated_data)
        # As the list shows it, from the booked instance (its number set by the booking): not
        # read back.
        return Response(self.get_serializer(session).data, status=201)

    @extend_schema(request=RescheduleSerializer, responses={200: SessionSerializer})
    @action(detail=True, methods=["post"])
    def reschedule(self, request: Request, pk: str) -> Response:
        session = self.get_object()  # 404 before 400
        body = RescheduleSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        session = services.reschedule_session(
            actor=request.user, session=session, **body.validated_data
        )
        return self._respond(session)

    @extend_schema(request=SessionCancelSerializer, responses={200: SessionSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        session = self.get_object()  # 404 before 400
        body = SessionCancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        session = services.cancel_session(
            actor=request.user, session=session, reason=body.validated_data["reason"]
        )
        return self._respond(session)

    @extend_schema(request=CheckInSerializer, responses={200: SessionSerializer})
    @action(detail=True, methods=["post"], url_path="check-in")
    def check_in(self, request: Request, pk: str) -> Response:
        session = self.get_object()  # 404 before 400
        body = CheckInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        session = services.check_in_session(
            actor=request.user, session=session, attestation=body.validated_data
        )
        return self._respond(session)

    @extend_schema(request=None, responses={200: SessionSerializer})
    @action(detail=True, methods=["post"], url_path="no-show")
    def no_show(self, request: Request, pk: str) -> Response:
        session = services.mark_no_show(actor=request.user, session=self.get_object())
        return self._respond(session)
