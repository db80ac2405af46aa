"""Exports: the tip-usage CSV (auditors, admins) and a patient's record as FHIR R4.

Both ignore the client's Accept header for their own body (a CSV client sends `text/csv`, a
FHIR client `application/fhir+json`), and answer errors as problem+json like every endpoint.
"""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response

from clinic import audit
from clinic.api.base import ClinicAPIView
from clinic.api.permissions import ALL_ROLES, AUDIT_READERS
from clinic.api.renderers import JSONRenderer
from patients.models import Patient
from treatments import exports, fhir


class OwnMediaType(BaseContentNegotiation):
    """Always the view's first renderer, whatever the client accepts (no 406)."""

    def select_parser(self, request: Any, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Any, renderers: list[Any], format_suffix: Any = None):
        return renderers[0], renderers[0].media_type


class FHIRJSONRenderer(JSONRenderer):
    media_type = fhir.FHIR_CONTENT_TYPE
    format = "fhir"


CSV_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="First day (clinic time)."),
    OpenApiParameter("to", OpenApiTypes.DATE, description="Last day (clinic time), inclusive."),
    OpenApiParameter("lot", str, description="A tip lot's id or lot number."),
]


class TipUsageExportView(ClinicAPIView):
    """Every cartridge used, one row per treatment record, oldest first, streamed.

    The first eight columns are the contract's; then `treatment_id, gtin, depths`
    (`area:mm;...`), `max_depth_mm, provider_name`, and `record_sequence, record_hash`: the
    record's link in the clinic's tamper-evident chain (`manage.py verify_audit`)."""

    read_roles = AUDIT_READERS
    audit_object_type = "tip_usage_export"
    renderer_classes = [JSONRenderer]
    content_negotiation_class = OwnMediaType
    http_method_names = ["get", "options"]

    @extend_schema(
        operation_id="export_tip_usage_csv",
        parameters=CSV_PARAMETERS,
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV")},
        summary="Tip usage as CSV (auditor, admin)",
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        exporter = exports.TipUsageExporter(request.user.clinic, request.query_params)
        response = StreamingHttpResponse(
            exporter.render(actor=request.user), content_type=exporter.content_type
        )
        response["Content-Disposition"] = f'attachment; filename="{exporter.filename}"'
        response["Cache-Control"] = "no-store"
        return response


class PatientEverythingView(ClinicAPIView):
    """FHIR R4 `Patient/{id}/$everything`: the patient, their series (CarePlan, with the
    aftercare as activities), sessions (Appointment), treatments (Procedure, using the cartridge
    lot's and handpiece's Device) and providers (Practitioner), as a searchset Bundle.

    Read by every role that reads patient records (admin, front desk, provider, auditor)."""

    read_roles = ALL_ROLES
    audit_object_type = "patient"
    renderer_classes = [FHIRJSONRenderer]
    content_negotiation_class = OwnMediaType
    http_method_names = ["get", "options"]

    @extend_schema(
        operation_id="fhir_patient_everything",
        responses={
            (200, fhir.FHIR_CONTENT_TYPE): OpenApiResponse(
                OpenApiTypes.OBJECT, description="FHIR R4 Bundle"
            )
        },
        summary="A patient's record as a FHIR R4 Bundle",
    )
    def get(self, request: Request, pk: str) -> Response:
        clinic = request.user.clinic
        patient = get_object_or_404(Patient.objects.filter(clinic=clinic), pk=pk)
        data = fhir.patient_records(clinic, patient)
        bundle = fhir.everything_bundle(
            data,
            base_url=request.build_absolute_uri("/api/v1/fhir/"),
            self_url=request.build_absolute_uri(),
        )
        audit.record(
            actor=request.user,
            action="fhir.patient_everything",
            object_type="patient",
            object_id=patient.id,
            patient_id=patient.id,
            detail={"resources": len(bundle["entry"])},
        )
        return Response(bundle, content_type=fhir.FHIR_CONTENT_TYPE)
