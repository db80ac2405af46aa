from dataclasses import asdict

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from clinic import audit
from clinic.api.base import ClinicScopedViewSet
from clinic.api.fields import FilterSet
from clinic.api.permissions import ADMIN, ALL_ROLES, PROVIDERS
from clinic.models import Role, User
from scheduling.models import Session
from treatments import recalls, selectors, services
from treatments.api.serializers import (
    AftercareSerializer,
    AftercareTemplateSerializer,
    AmendmentInputSerializer,
    AmendmentSerializer,
    ConfirmNoticeInputSerializer,
    DismissNoticeInputSerializer,
    RecallInputSerializer,
    RecallNoticeSerializer,
    RecallSerializer,
    ScanInputSerializer,
    ScanSerializer,
    TipLotSerializer,
    TreatmentInputSerializer,
    TreatmentRecordSerializer,
)
from treatments.errors import TipLotMismatch, TipLotUnknown
from treatments.models import (
    AftercareTemplate,
    RecallNotice,
    RecallNoticeStatus,
    TipLot,
    TreatmentRecord,
)


class TipLotViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ClinicScopedViewSet):
    """Cartridge lots in stock. Status is derived: recalled, exhausted, expired or active."""

    queryset = TipLot.objects.all()
    serializer_class = TipLotSerializer
    read_roles = ALL_ROLES
    write_roles = PROVIDERS

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        context["today"] = self.request.user.clinic.today()
        return context

    def create(self, request: Request) -> Response:
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        lot = services.receive_tip_lot(actor=request.user, **body.validated_data)
        return Response(self.get_serializer(lot).data, status=201)

    @extend_schema(request=ScanInputSerializer, responses={200: ScanSerializer})
    @action(detail=False, methods=["post"])
    def scan(self, request: Request) -> Response:
        """Read a cartridge box's GS1 UDI and find the clinic's lot it belongs to (or null).

        Writes nothing: the lot is the one a treatment by this scan would use."""
        body = ScanInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        udi = body.validated_data["barcode"]
        try:
            lot = services.scanned_lot(request.user.clinic_uuid, udi)
        except (TipLotUnknown, TipLotMismatch):
            lot = None
        return Response(
            ScanSerializer(
                {
                    "gtin": udi.gtin,
                    "lot_number": udi.lot_number,
                    "expires_on": udi.expires_on,
                    "serial_number": udi.serial_number,
                    "tip_lot": lot,
                },
                context=self.get_serializer_context(),
            ).data
        )


def recall_response(actor: User, recall: services.Recall) -> Response:
    # The answer names each affected patient with their contact details: a read of each.
    audit.record_reads(
        actor=actor,
        action="tip_lot.recall_affected_patient",
        object_type="patient",
        objects=[(patient.id, patient.id) for patient in recall.affected_patients],
    )
    return Response(RecallSerializer(asdict(recall)).data)


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


class TipLotActionsViewSet(ClinicScopedViewSet):
    """Recall a lot (admin) and list the treatments that used it."""

    queryset = TipLot.objects.all()
    read_roles = ALL_ROLES
    write_roles = ADMIN
    audit_object_type = "tip_lot"

    @extend_schema(request=RecallInputSerializer, responses={200: RecallSerializer})
    def recall(self, request: Request, pk: str) -> Response:
        lot = self.get_object()
        body = RecallInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        recall = services.recall_tip_lot(
            actor=request.user, lot=lot, reason=body.validated_data["reason"]
        )
        return recall_response(request.user, recall)

    @extend_schema(responses={200: TreatmentRecordSerializer(many=True)})
    def usage(self, request: Request, pk: str) -> Response:
        lot = self.compiled_object()
        page = self.paginate_queryset(selectors.LotUsage(lot.clinic_id, lot.id))
        audit.record_reads(
            actor=request.user,
            action="treatment.read",
            object_type="treatment_record",
            objects=[(record.id, record.patient_id) for record in page],
        )
        return self.get_paginated_response(TreatmentRecordSerializer(page, many=True).data)


class SessionTreatmentViewSet(ClinicScopedViewSet):
    """A session's treatment record (provider writes it once), its amendments and aftercare.

    The record is never edited in place: PUT, PATCH and DELETE answer 405; corrections are
    amendments, which keep the original and say who, when and why."""

    queryset = Session.objects.all()
    read_roles = ALL_ROLES
    # Recording a treatment and amending it are the provider's own acts: the person who charts
    # is the person who treated (contract, "Clarifications of v1"); an admin gets 403.
    write_roles = frozenset({Role.PROVIDER})
    audit_object_type = "treatment_record"
    pagination_class = None

    def _record(self, session: Session) -> TreatmentRecord:
        record = selectors.record_of_session(session.clinic_id, session.id)
        if record is None:
            raise NotFound("This session has no treatment record.")
        return record

    def _read(self, request: Request, record: TreatmentRecord) -> None:
        audit.record_reads(
            actor=request.user,
            action="treatment.read",
            object_type="treatment_record",
            objects=[(record.id, record.patient_id)],
        )

    @extend_schema(responses={200: TreatmentRecordSerializer})
    def retrieve(self, request: Request, pk: str) -> Response:
        record = self._record(self.get_object())
        self._read(request, record)
        return Response(TreatmentRecordSerializer(record).data)

    @extend_schema(request=TreatmentInputSerializer, responses={201: TreatmentRecordSerializer})
    def create(self, request: Request, pk: str) -> Response:
        session = self.get_object()
        body = TreatmentInputSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        data = body.validated_data
        depths = [(d["area"], d["depth_mm"]) for d in data["depths"]]
        record = services.record_treatment(
            actor=request.user,
            session=session,
            tip_lot=data["tip_lot"],
            tip_barcode=data["tip_barcode"],
            handpiece=data["handpiece"],
            depths=depths,
            notes=data["notes"],
            depth_override_reason=data["depth_override_reason"],
            performed_at=data["performed_at"],
            acknowledged_warnings=data["acknowledged_warnings"],
        )
        # The record as written, its depths and (no) amendments with it: not read back.
        record = selectors.as_written(record, depths)
        return Response(TreatmentRecordSerializer(record).data, status=201)

    @extend_schema(responses={200: AmendmentSerializer(many=True)})
    def amendments(self, request: Request, pk: str) -> Response:
        record = self._record(self.get_object())
        self._read(request, record)
        return Response(AmendmentSerializer(record.amendments.all(), many=True).data)

    @extend_schema(request=AmendmentInputSerializer, responses={201: AmendmentSerializer})
    def amend(self, request: Request, pk: str) -> Response:
        record = self._record(self.get_object())
        body = AmendmentInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        amendment = services.amend_treatment(
            actor=request.user,
            record=record,
            reason=data["reason"],
            notes=data.get("notes"),
            depths=[(d["area"], d["depth_mm"]) for d in data["depths"]]
            if "depths" in data
            else None,
            depth_override_reason=data.get("depth_override_reason"),
        )
        return Response(AmendmentSerializer(amendment).data, status=201)

    @extend_schema(responses={200: AftercareSerializer})
    def aftercare(self, request: Request, pk: str) -> Response:
        session = self.get_object()
        plan = selectors.aftercare_of_session(session.clinic_id, session.id)
        if plan is None:
            raise NotFound("This session has no aftercare plan (it is not treated yet).")
        audit.record_reads(
            actor=request.user,
            action="aftercare.read",
            object_type="aftercare_plan",
            objects=[(plan.id, session.patient_id)],
        )
        return Response(AftercareSerializer({"session": session.id, "steps": plan.steps}).data)


class RecallNoticeFilter(FilterSet):
    status = filters.ChoiceFilter(choices=RecallNoticeStatus.choices)

    class Meta:
        model = RecallNotice
        fields: list[str] = []


class RecallNoticeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ClinicScopedViewSet):
    """Recalls of the regulator's feed that name one of the clinic's lots (the recall watcher).

    While a notice is open its lot is quarantined; an admin confirms it (the lot is recalled,
    as POST /tip-lots/{id}/recall/ does) or dismisses it (the lot is free again)."""

    queryset = RecallNotice.objects.order_by("-created_at", "-id")
    serializer_class = RecallNoticeSerializer
    filterset_class = RecallNoticeFilter
    read_roles = frozenset({Role.ADMIN, Role.PROVIDER, Role.AUDITOR})
    write_roles = ADMIN

    @extend_schema(request=ConfirmNoticeInputSerializer, responses={200: RecallSerializer})
    @action(detail=True, methods=["post"])
    def confirm(self, request: Request, pk: str) -> Response:
        notice = self.get_object()
        body = ConfirmNoticeInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        recall = recalls.confirm(
            actor=request.user, notice=notice, reason=body.validated_data["reason"]
        )
        return recall_response(request.user, recall)

    @extend_schema(request=DismissNoticeInputSerializer, responses={200: RecallNoticeSerializer})
    @action(detail=True, methods=["post"])
    def dismiss(self, request: Request, pk: str) -> Response:
        notice = self.get_object()
        body = DismissNoticeInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        notice = recalls.dismiss(
            actor=request.user, notice=notice, reason=body.validated_data["reason"]
        )
        return Response(RecallNoticeSerializer(notice).data)
