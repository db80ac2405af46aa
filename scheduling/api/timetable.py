"""The appointment book's API: working hours, time off, availability, a series' plan and booking,
and calendar feeds. Serializers check shape; scheduling.checks and the services check rules."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, serializers
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from clinic import audit
from clinic.api.base import ClinicAPIView, ClinicRelatedField, ClinicScopedViewSet
from clinic.api.fields import (
    CharField,
    DateField,
    DateFilter,
    DateTimeField,
    FilterSet,
    IntegerField,
    ModelSerializer,
    Serializer,
    URLField,
    value_writer,
)
from clinic.api.permissions import ADMIN, ALL_ROLES, CLINICAL_STAFF
from clinic.api.problems import PROBLEM_CONTENT_TYPE, ProblemSerializer
from clinic.models import Role, Room, User
from scheduling import availability, ics, rules, selectors, services, slots, timetable_services
from scheduling.api.serializers import SessionSerializer
from scheduling.models import Series, Session
from scheduling.timetable import TimeOff

# --- Working hours ----------------------------------------------------------------------------


HHMM = "([01][0-9]|2[0-3]):[0-5][0-9]"


@extend_schema_field({"type": "string", "pattern": f"^{HHMM}$"})
class HHMMField(CharField):
    default_error_messages = {"hhmm": "Use HH:MM (00:00 to 23:59; 24:00 as an end)."}

    def __init__(self, *, allow_midnight_end: bool = False, **kwargs: Any) -> None:
        self.allow_midnight_end = allow_midnight_end
        # "09:00 " is not HH:MM (the schema's pattern): not trimmed into one.
        super().__init__(trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        value = super().to_internal_value(data)
        try:
            return slots.parse_hhmm(value, allow_midnight_end=self.allow_midnight_end)
        except ValueError:
            self.fail("hhmm")

    def to_representation(self, value: int) -> str:
        return slots.format_hhmm(value)


@extend_schema_field({"type": "string", "pattern": f"^({HHMM}|24:00)$"})
class HHMMEndField(HHMMField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_midnight_end=True, **kwargs)


class WorkingIntervalSerializer(Serializer):
    weekday = IntegerField(min_value=0, max_value=6, help_text="0 = Monday ... 6")
    starts = HHMMField(source="starts_minute", help_text="HH:MM, clinic time")
    ends = HHMMEndField(source="ends_minute", help_text="HH:MM, clinic time; 24:00 ok")


class WorkingHoursSerializer(Serializer):
    intervals = WorkingIntervalSerializer(many=True, max_length=200)


class WorkingHoursView(ClinicAPIView):
    """A provider's weekly working hours in the clinic's zone; none means no limit."""

    read_roles = ALL_ROLES
    write_roles = ADMIN

    def _staff(self, request: Request, pk: Any) -> User:
        return get_object_or_404(User, pk=pk, clinic_id=request.user.clinic_id)

    def _body(self, staff: User) -> dict[str, Any]:
        intervals = timetable_services.working_hours_of(staff)
        return WorkingHoursSerializer({"intervals": intervals}).data

    @extend_schema(responses={200: WorkingHoursSerializer})
    def get(self, request: Request, pk: Any) -> Response:
        return Response(self._body(self._staff(request, pk)))

    @extend_schema(request=WorkingHoursSerializer, responses={200: WorkingHoursSerializer})
    def put(self, request: Request, pk: Any) -> Response:
        staff = self._staff(request, pk)  # 404 before 400
        body = WorkingHoursSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        timetable_services.set_working_hours(
            actor=request.user,
            provider=staff,
            intervals=[slots.WeeklyInterval(**i) for i in body.validated_data["intervals"]],
        )
        return Response(self._body(staff))


# --- Time off ---------------------------------------------------------------------------------


class TimeOffSerializer(ModelSerializer):
    provider = ClinicRelatedField(
        queryset=User.objects.filter(role=Role.PROVIDER),
        required=False,
        allow_null=True,
        help_text="A provider; give exactly one of provider and room.",
    )
    room = ClinicRelatedField(queryset=Room.objects.all(), required=False, allow_null=True)
    starts_at = DateTimeField()
    ends_at = DateTimeField(help_text="After starts_at; the range is [starts_at, ends_at).")
    reason = CharField(max_length=500, required=False, allow_blank=True, default="")

    class Meta:
        model = TimeOff
        fields = ["id", "provider", "room", "starts_at", "ends_at", "reason"]
        read_only_fields = ["id"]


class TimeOffFilter(FilterSet):
    provider = filters.UUIDFilter(field_name="provider_id")
    room = filters.UUIDFilter(field_name="room_id")
    from_ = DateFilter(
        field_name="from",
        method="filter_from",
        help_text="YYYY-MM-DD, clinic time: time off that reaches into this day or later.",
    )
    to = DateFilter(
        method="filter_to",
        help_text="YYYY-MM-DD, clinic time: time off that starts on this day or earlier.",
    )

    class Meta:
        model = TimeOff
        fields: list[str] = []

    def filter_from(self, queryset, name, value):
        start, _end = self.request.user.clinic.day_bounds(value)
        return queryset.filter(ends_at__gt=start)

    def filter_to(self, queryset, name, value):
        _start, end = self.request.user.clinic.day_bounds(value)
        return queryset.filter(starts_at__lt=end)

    @classmethod
    def get_filters(cls):
        found = super().get_filters()
        found["from"] = found.pop("from_")
        return found


class TimeOffViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ClinicScopedViewSet
):
    """Time off of a provider or a room (write: admin)."""

    queryset = TimeOff.objects.order_by("starts_at", "id")
    serializer_class = TimeOffSerializer
    filterset_class = TimeOffFilter
    read_roles = ALL_ROLES
    write_roles = ADMIN

    @extend_schema(responses={201: TimeOffSerializer})
    def create(self, request: Request) -> Response:
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        time_off = timetable_services.create_time_off(actor=request.user, **body.validated_data)
        return Response(self.get_serializer(time_off).data, status=201)

    def perform_destroy(self, instance: TimeOff) -> None:
        timetable_services.delete_time_off(actor=self.request.user, time_off=instance)


# --- Availability -----------------------------------------------------------------------------


class AvailabilityQuerySerializer(Serializer):
    provider = ClinicRelatedField(queryset=User.objects.all())
    room = ClinicRelatedField(queryset=Room.objects.all(), required=False, allow_null=True)
    series = ClinicRelatedField(
        queryset=Series.objects.select_related("clinic", "patient"), required=False
    )
    from_ = DateField(help_text="YYYY-MM-DD, clinic time")
    to = DateField(required=False, help_text="YYYY-MM-DD, inclusive; default: from")
    duration_minutes = IntegerField(default=rules.DEFAULT_DURATION_MINUTES)
    step_minutes = IntegerField(default=15)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class SlotSerializer(Serializer):
    starts_at = DateTimeField()
    ends_at = DateTimeField()


class AvailabilitySerializer(Serializer):
    slots = SlotSerializer(many=True)


class AvailabilityView(ClinicAPIView):
    """Free slots of a provider (and room; with `series`, its patient and interval rule too)."""

    read_roles = ALL_ROLES

    @extend_schema(
        parameters=[AvailabilityQuerySerializer],
        responses={
            200: AvailabilitySerializer,
            (400, PROBLEM_CONTENT_TYPE): OpenApiResponse(
                ProblemSerializer, description="`invalid`: a parameter, or more than 31 days"
            ),
            (409, PROBLEM_CONTENT_TYPE): OpenApiResponse(
                ProblemSerializer, description="`invalid_state`: the series takes no sessions"
            ),
            (422, PROBLEM_CONTENT_TYPE): OpenApiResponse(
                ProblemSerializer, description="`indication_not_allowed` for the series"
            ),
        },
    )
    def get(self, request: Request) -> Response:
        query = AvailabilityQuerySerializer(data=request.query_params, context={"request": request})
        query.is_valid(raise_exception=True)
        params = query.validated_data
        found = availability.free_slots(
            clinic=request.user.clinic,
            provider=params["provider"],
            room=params.get("room"),
            series=params.get("series"),
            first_day=params["from"],
            last_day=params.get("to") or params["from"],
            duration_minutes=params["duration_minutes"],
            step_minutes=params["step_minutes"],
            now=timezone.now(),
        )
        # AvailabilitySerializer's shape, each time written as its field writes it: a serializer
        # per slot cost more than finding the slots.
        stamp = value_writer(SlotSerializer().fields["starts_at"])
        return Response({"slots": [{"starts_at": stamp(s), "ends_at": stamp(e)} for s, e in found]})


# --- Plan and book the rest of a series -------------------------------------------------------


class SeriesPlanRequestSerializer(Serializer):
    provider = ClinicRelatedField(
        queryset=User.objects.all(), help_text="A staff member with the provider role."
    )
    room = ClinicRelatedField(queryset=Room.objects.all(), required=False, allow_null=True)
    first_starts_at = DateTimeField()
    duration_minutes = IntegerField(default=rules.DEFAULT_DURATION_MINUTES)
    window_days = IntegerField(
        default=0,
        help_text="A time that cannot be booked moves to the earliest bookable 15-minute slot "
        "within this many days after it.",
    )


class PlannedSessionSerializer(Serializer):
    number = IntegerField()
    starts_at = DateTimeField()
    ends_at = DateTimeField()
    flags = serializers.ListField(child=CharField())


class SeriesPlanSerializer(Serializer):
    sessions = PlannedSessionSerializer(many=True)


class SeriesBookedSerializer(Serializer):
    sessions = SessionSerializer(many=True)


class _SeriesActionView(ClinicAPIView):
    read_roles = CLINICAL_STAFF
    write_roles = CLINICAL_STAFF
    audit_object_type = "series"

    def _series_and_body(self, request: Request, pk: Any) -> tuple[Series, dict[str, Any]]:
        series = get_object_or_404(
            Series.objects.select_related("clinic", "patient"),
            pk=pk,
            clinic_id=request.user.clinic_id,
        )
        body = SeriesPlanRequestSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        return series, dict(body.validated_data)


class SeriesPlanView(_SeriesActionView):
    @extend_schema(
        request=SeriesPlanRequestSerializer,
        responses={200: SeriesPlanSerializer},
        summary="Plan the series' remaining sessions (nothing is written)",
    )
    def post(self, request: Request, pk: Any) -> Response:
        series, params = self._series_and_body(request, pk)
        plan = availability.plan_series(series=series, now=timezone.now(), **params)
        audit.record_reads(
            actor=request.user,
            action="series.plan",
            object_type="series",
            objects=[(series.pk, series.patient_id)],
        )
        return Response(SeriesPlanSerializer({"sessions": [vars(p) for p in plan]}).data)


class SeriesBookView(_SeriesActionView):
    @extend_schema(
        request=SeriesPlanRequestSerializer,
        responses={201: SeriesBookedSerializer},
        summary="Book the series' remaining sessions as planned, all or nothing",
    )
    def post(self, request: Request, pk: Any) -> Response:
        series, params = self._series_and_body(request, pk)
        sessions = services.book_series(actor=request.user, series=series, **params)
        booked = selectors.sessions_with_number(
            Session.objects.filter(pk__in=[s.pk for s in sessions])
        ).order_by("starts_at", "id")
        return Response(SeriesBookedSerializer({"sessions": booked}).data, status=201)


# --- Calendar feed ----------------------------------------------------------------------------


class CalendarFeedSerializer(Serializer):
    url = URLField(help_text="Secret; no Authorization needed. A new one replaces it.")


class CalendarFeedRotateView(ClinicAPIView):
    """A new secret calendar URL for a staff member (admin, or the staff member themself)."""

    read_roles = frozenset()
    write_roles = frozenset(Role.values)

    @extend_schema(request=None, responses={201: CalendarFeedSerializer})
    def post(self, request: Request, pk: Any) -> Response:
        staff = get_object_or_404(User, pk=pk, clinic_id=request.user.clinic_id)
        if request.user.role != Role.ADMIN and request.user.pk != staff.pk:
            self.permission_denied(request, "Only an admin or the staff member themself.")
        secret = timetable_services.rotate_calendar_feed(actor=request.user, staff=staff)
        url = request.build_absolute_uri(reverse("calendar-feed", kwargs={"secret": secret}))
        return Response(CalendarFeedSerializer({"url": url}).data, status=201)


class AnyAccept(BaseContentNegotiation):
    """Calendar apps ask for text/calendar; the view answers it whatever DRF's renderers say
    (and an error as problem+json)."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: Any, format_suffix: Any = None) -> Any:
        return renderers[0], renderers[0].media_type


class CalendarFeedView(APIView):
    """The calendar itself: RFC 5545, no Authorization (the URL is the secret)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    content_negotiation_class = AnyAccept

    @extend_schema(
        responses={
            (200, "text/calendar"): OpenApiResponse(OpenApiTypes.BINARY, description="iCalendar")
        }
    )
    def get(self, request: Request, secret: str) -> HttpResponse:
        feed = timetable_services.feed_by_secret(secret)
        if feed is None or not feed.staff.is_active:
            raise NotFound()
        audit.record(
            actor=None,
            actor_label="calendar feed",
            clinic_id=feed.clinic_id,
            action="calendar_feed.read",
            object_type="staff",
            object_id=feed.staff_id,
        )
        body = ics.render_feed(feed.staff, now=timezone.now())
        response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
        response["Cache-Control"] = "private, max-age=300"
        return response
