"""Consent forms (versioned; write: admin) and a patient's signed consents (admin, front desk,
provider; auditors read). Shapes and thin views: the rules are treatments.consents'."""

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from clinic import audit
from clinic.api.base import ClinicRelatedField, ClinicScopedViewSet
from clinic.api.fields import (
    BooleanField,
    BooleanFilter,
    CharField,
    ChoiceField,
    DateTimeField,
    FilterSet,
    IntegerField,
    ModelSerializer,
    UUIDField,
)
from clinic.api.permissions import ADMIN, ALL_ROLES, CLINICAL_STAFF
from patients.models import Patient
from scheduling.rules import Indication
from treatments import consents, rules
from treatments.models import Consent, ConsentForm


class ConsentFormSerializer(ModelSerializer):
    title = CharField(max_length=rules.CONSENT_TITLE_MAX_LENGTH)
    body = CharField(max_length=rules.CONSENT_BODY_MAX_LENGTH, trim_whitespace=False)
    indications = serializers.ListField(
        child=ChoiceField(choices=Indication.choices),
        required=False,
        default=list,
        help_text="The series indications the form covers; empty: every indication.",
    )
    required = BooleanField(
        required=False, default=True, help_text="Treatment needs the patient's signature."
    )
    sha256 = CharField(read_only=True, help_text="Hex SHA-256 of the UTF-8 body.")

    class Meta:
        model = ConsentForm
        fields = [
            "id",
            "title",
            "version",
            "body",
            "sha256",
            "indications",
            "required",
            "active",
            "created_at",
        ]
        read_only_fields = ["id", "version", "sha256", "active", "created_at"]
        validators: list[object] = []


class ConsentFormReviseSerializer(serializers.Serializer):
    body = CharField(max_length=rules.CONSENT_BODY_MAX_LENGTH, trim_whitespace=False)


class ConsentSerializer(ModelSerializer):
    consent_form = ClinicRelatedField(queryset=ConsentForm.objects.all())
    title = CharField(source="consent_form.title", read_only=True)
    version = IntegerField(source="consent_form.version", read_only=True)
    sha256 = CharField(source="consent_form.sha256", read_only=True)
    signature_name = CharField(max_length=rules.SIGNATURE_NAME_MAX_LENGTH)
    signed_at = DateTimeField(
        required=False, default=None, help_text="Not in the future; default: now."
    )
    witnessed_by = UUIDField(
        source="witnessed_by_id", read_only=True, help_text="The signed-in staff member."
    )

    class Meta:
        model = Consent
        fields = [
            "id",
            "patient",
            "consent_form",
            "title",
            "version",
            "sha256",
            "signature_name",
            "signed_at",
            "witnessed_by",
            "revoked_at",
        ]
        read_only_fields = ["id", "patient", "revoked_at"]


class ConsentFormFilter(FilterSet):
    active = BooleanFilter(help_text="true: current versions only; false: retired ones.")

    class Meta:
        model = ConsentForm
        fields: list[str] = []


class ConsentFormViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ClinicScopedViewSet):
    """The clinic's consent forms, every version. Never edited (PATCH, PUT, DELETE: 405):
    `revise` writes the next version and retires the one revised."""

    queryset = ConsentForm.objects.order_by("title", "-version", "id")
    serializer_class = ConsentFormSerializer
    filterset_class = ConsentFormFilter
    read_roles = ALL_ROLES
    write_roles = ADMIN
    http_method_names = ["get", "post", "head", "options"]

    def create(self, request: Request) -> Response:
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        form = consents.create_consent_form(actor=request.user, **body.validated_data)
        return Response(self.get_serializer(form).data, status=201)

    @extend_schema(request=ConsentFormReviseSerializer, responses={201: ConsentFormSerializer})
    @action(detail=True, methods=["post"])
    def revise(self, request: Request, pk: str) -> Response:
        form = self.get_object()  # 404 before 400
        body = ConsentFormReviseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        revised = consents.revise_consent_form(
            actor=request.user, form=form, body=body.validated_data["body"]
        )
        return Response(self.get_serializer(revised).data, status=201)


class PatientConsentViewSet(ClinicScopedViewSet):
    """A patient's signed consents, newest first; each read is audited as patient data."""

    queryset = Patient.objects.all()
    serializer_class = ConsentSerializer
    read_roles = ALL_ROLES
    write_roles = CLINICAL_STAFF
    audit_object_type = "consent"

    def _patient(self, pk: str) -> Patient:
        return get_object_or_404(self.get_queryset(), pk=pk)

    def _consents(self, patient: Patient) -> QuerySet[Consent]:
        return Consent.objects.filter(patient=patient).select_related("consent_form")

    def _read(self, request: Request, objects: list[Consent], verb: str) -> None:
        audit.record_reads(
            actor=request.user,
            action=f"consent.{verb}",
            object_type="consent",
            objects=[(consent.id, consent.patient_id) for consent in objects],
        )

    @extend_schema(responses={200: ConsentSerializer(many=True)})
    def list(self, request: Request, pk: str) -> Response:
        patient = self._patient(pk)
        page = self.paginate_queryset(self._consents(patient).order_by("-signed_at", "-id"))
        self._read(request, page, "list")
        return self.get_paginated_response(ConsentSerializer(page, many=True).data)

    @extend_schema(request=ConsentSerializer, responses={201: ConsentSerializer})
    def create(self, request: Request, pk: str) -> Response:
        patient = self._patient(pk)
        body = ConsentSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        consent = consents.sign_consent(actor=request.user, patient=patient, **body.validated_data)
        return Response(ConsentSerializer(consent).data, status=201)

    def _consent(self, pk: str, consent_id: str) -> Consent:
        return get_object_or_404(self._consents(self._patient(pk)), pk=consent_id)

    @extend_schema(responses={200: ConsentSerializer})
    def retrieve(self, request: Request, pk: str, consent_id: str) -> Response:
        consent = self._consent(pk, consent_id)
        self._read(request, [consent], "read")
        return Response(ConsentSerializer(consent).data)

    @extend_schema(request=None, responses={200: ConsentSerializer})
    def revoke(self, request: Request, pk: str, consent_id: str) -> Response:
        consent = consents.revoke_consent(actor=request.user, consent=self._consent(pk, consent_id))
        return Response(ConsentSerializer(consent).data)
