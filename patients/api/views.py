from typing import Any
from uuid import UUID

from django.http import Http404
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from clinic import audit
from clinic.api.base import ClinicScopedViewSet, PatientDataViewSet
from clinic.api.fields import BooleanFilter, FilterSet
from clinic.api.permissions import ALL_ROLES, CLINICAL_STAFF
from patients import selectors, services
from patients.api.serializers import (
    EligibilityQuerySerializer,
    EligibilitySerializer,
    PatientSerializer,
    ScreeningSerializer,
)
from patients.models import Patient, Screening


class PatientFilter(FilterSet):
    search = filters.CharFilter(method="filter_search", help_text="Name, email or phone.")
    archived = BooleanFilter(
        method="filter_archived",
        help_text="true: only archived patients; false (default): only active ones.",
    )

    class Meta:
        model = Patient
        fields: list[str] = []

    def filter_search(self, queryset, name, value):
        return selectors.search_patients(queryset, value)

    def filter_archived(self, queryset, name, value):
        return queryset.filter(archived_at__isnull=not value)

    def filter_queryset(self, queryset):
        if self.form.cleaned_data.get("archived") is None:
            queryset = queryset.filter(archived_at__isnull=True)
        return super().filter_queryset(queryset)


# The filters a compiled list does not apply: a request naming one goes through the filterset.
_OTHER_FILTERS = frozenset(PatientFilter.base_filters) - {"search"}


class PatientViewSet(PatientDataViewSet):
    """Patients. Records are archived, never deleted (DELETE and PUT answer 405)."""

    queryset = Patient.objects.all()
    serializer_class = PatientSerializer
    filterset_class = PatientFilter
    read_roles = ALL_ROLES
    write_roles = CLINICAL_STAFF
    audit_object_type = "patient"
    http_method_names = ["get", "post", "patch", "head", "options"]

    def audited_patient_id(self, patient: Patient) -> UUID:
        return patient.id

    def list_rows(self) -> Any:
        # The front desk's list and search (active patients, `?search=` or nothing) by a
        # statement compiled once (tests/patients/test_compiled_search.py holds it to the
        # filterset's answers and SQL); any other filter's parameter (`?archived=`), or a
        # search the filter's form would refuse (a NUL character: 400), through the filterset.
        params = self.request.query_params
        text = params.get("search", "")
        if any(name in params for name in _OTHER_FILTERS) or "\x00" in text:
            return super().list_rows()
        return selectors.active_patients_matching(self.request.user.clinic_id, text)

    def create(self, request: Request) -> Response:
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        patient = services.register_patient(actor=request.user, data=body.validated_data)
        return Response(self.get_serializer(patient).data, status=201)

    def partial_update(self, request: Request, pk: str) -> Response:
        patient = self.get_object()
        body = self.get_serializer(patient, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        patient = services.update_patient(
            actor=request.user, patient=patient, changes=dict(body.validated_data)
        )
        return Response(self.get_serializer(patient).data)

    @extend_schema(request=None, responses={200: PatientSerializer})
    @action(detail=True, methods=["post"])
    def archive(self, request: Request, pk: str) -> Response:
        patient = services.archive_patient(actor=request.user, patient=self.get_object())
        return Response(self.get_serializer(patient).data)


class ScreeningViewSet(ClinicScopedViewSet):
    """A patient's screenings (newest first) and their eligibility on a date."""

    # Screenings of the user's clinic (ClinicScopedViewSet); the URL's `pk` is the patient's,
    # looked up in the same clinic, so another clinic's patient is a 404 like a missing one.
    queryset = Screening.objects.order_by("-screened_at", "-id")
    serializer_class = ScreeningSerializer
    read_roles = ALL_ROLES
    write_roles = CLINICAL_STAFF
    audit_object_type = "screening"

    def _patient(self, pk: str) -> Patient:
        patient = selectors.patient_of_clinic(self.request.user.clinic_id, pk)
        if patient is None:
            raise Http404
        return patient

    @extend_schema(responses={200: ScreeningSerializer(many=True)})
    def list(self, request: Request, pk: str) -> Response:
        patient = self._patient(pk)
        screenings = self.paginate_queryset(self.get_queryset().filter(patient=patient))
        audit.record_reads(
            actor=request.user,
            action="screening.list",
            object_type="screening",
            objects=[(s.id, patient.id) for s in screenings],
        )
        return self.get_paginated_response(ScreeningSerializer(screenings, many=True).data)

    @extend_schema(request=ScreeningSerializer, responses={201: ScreeningSerializer})
    def create(self, request: Request, pk: str) -> Response:
        patient = self._patient(pk)
        body = ScreeningSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        screening = services.record_screening(
            actor=request.user, patient=patient, answers=dict(body.validated_data)
        )
        return Response(ScreeningSerializer(screening).data, status=201)

    @extend_schema(
        parameters=[
            OpenApiParameter("on", type=str, description="YYYY-MM-DD; default today (clinic)")
        ],
        responses={200: EligibilitySerializer},
    )
    def eligibility(self, request: Request, pk: str) -> Response:
        patient = self._patient(pk)
        query = EligibilityQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        # The patient's clinic is the user's (`_patient` looks it up there), loaded with them.
        on = query.validated_data.get("on") or request.user.clinic.today()
        result = selectors.eligibility_on(patient, on)
        audit.record_reads(
            actor=request.user,
            action="patient.eligibility",
            object_type="patient",
            objects=[(patient.id, patient.id)],
        )
        return Response(
            EligibilitySerializer(
                {
                    "eligible": result.eligible,
                    "reasons": list(result.reasons),
                    "valid_until": result.valid_until,
                    "eligible_from": result.eligible_from,
                }
            ).data
        )
