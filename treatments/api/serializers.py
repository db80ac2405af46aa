from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clinic.api.base import ClinicRelatedField
from clinic.api.fields import (
    BooleanField,
    CharField,
    ChoiceField,
    DateField,
    DateTimeField,
    DecimalField,
    IntegerField,
    ModelSerializer,
    RegexField,
    Serializer,
    UUIDField,
)
from clinic.models import Handpiece
from patients.rules import WARNING_CODES
from treatments import gs1, rules, selectors
from treatments.models import (
    AftercareTemplate,
    RecallNotice,
    TipLot,
    TreatmentAmendment,
    TreatmentRecord,
)


class BarcodeField(CharField):
    """A scanned GS1 UDI (any of the forms treatments.gs1 reads), validated to a `gs1.Udi`."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", gs1.MAX_BARCODE_LENGTH)
        # A GS (\x1d) separator is data: never trim it away.
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def run_validation(self, data=serializers.empty):
        text = super().run_validation(data)
        if text is None or text is serializers.empty:
            return text
        try:
            return gs1.parse_udi(text)
        except gs1.BarcodeError as exc:
            raise serializers.ValidationError(exc.messages) from exc


class TipLotSerializer(ModelSerializer):
    # Received by scanning the box: `barcode` in place of lot_number, expires_on and gtin.
    barcode = BarcodeField(
        write_only=True,
        required=False,
        help_text="The box's GS1 UDI (element string, (01)...(17)...(10)... or Digital Link), "
        "in place of lot_number, expires_on and gtin.",
    )
    lot_number = CharField(max_length=64, required=False)
    expires_on = DateField(required=False)
    quantity_received = IntegerField(min_value=1, max_value=rules.MAX_LOT_QUANTITY)
    gtin = RegexField(r"^\d{8}$|^\d{12,14}$", required=False, allow_blank=True, default="")
    quantity_remaining = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField()

    class Meta:
        model = TipLot
        fields = [
            "id",
            "barcode",
            "lot_number",
            "gtin",
            "expires_on",
            "quantity_received",
            "quantity_used",
            "quantity_remaining",
            "status",
            "received_at",
            "recalled_at",
        ]
        read_only_fields = ["id", "quantity_used", "received_at", "recalled_at"]
        validators: list[object] = []

    def validate(self, attrs: dict) -> dict:
        udi = attrs.pop("barcode", None)
        if udi is None:
            missing = {
                field: ["This field is required (or give barcode)."]
                for field in ("lot_number", "expires_on")
                if field not in attrs
            }
            if missing:
                raise serializers.ValidationError(missing)
            return attrs
        scanned = {"lot_number": udi.lot_number, "expires_on": udi.expires_on, "gtin": udi.gtin}
        differing = {
            field: [f"Differs from the barcode's {scanned[field]}."]
            for field in scanned
            if attrs.get(field) not in (None, "", scanned[field])
        }
        if differing:
            raise serializers.ValidationError(differing)
        return {**attrs, **scanned, "udi_carrier": udi.carrier_hrf}

    def get_quantity_remaining(self, lot: TipLot) -> int:
        return lot.quantity_remaining

    @extend_schema_field(ChoiceField(choices=rules.LotStatus.choices))
    def get_status(self, lot: TipLot) -> str:
        return rules.lot_status(
            expires_on=lot.expires_on,
            quantity_received=lot.quantity_received,
            quantity_used=lot.quantity_used,
            recalled=lot.recalled_at is not None,
            quarantined=lot.quarantined_at is not None,
            today=self.context["today"],
        )


class AftercareStepSerializer(Serializer):
    day_offset = IntegerField(min_value=0, max_value=rules.MAX_AFTERCARE_DAY_OFFSET)
    product = CharField(
        max_length=rules.AFTERCARE_PRODUCT_MAX_LENGTH, allow_blank=True, required=False, default=""
    )
    instruction = CharField(max_length=rules.AFTERCARE_INSTRUCTION_MAX_LENGTH)


class AftercareTemplateSerializer(ModelSerializer):
    steps = AftercareStepSerializer(many=True, allow_empty=False)
    is_default = BooleanField(required=False, default=False)

    class Meta:
        model = AftercareTemplate
        fields = ["id", "name", "is_default", "steps", "updated_at"]
        read_only_fields = ["id", "updated_at"]
        validators: list[object] = []


class DepthSerializer(Serializer):
    area = ChoiceField(choices=rules.AREAS)
    # Any precision in ("1.500" is 1.5); whether it is a SkinPen setting is the rule's call.
    # Out it goes as stored: two decimals ("1.25").
    depth_mm = DecimalField(max_digits=8, decimal_places=None)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["depth_mm"] = f"{Decimal(str(data['depth_mm'])):.2f}"
        return data


class TreatmentInputSerializer(Serializer):
    """Shape only; the depth rules, lot and eligibility checks are the service's."""

    tip_lot = ClinicRelatedField(
        queryset=TipLot.objects.all(), required=False, allow_null=True, default=None
    )
    tip_barcode = BarcodeField(
        required=False,
        default=None,
        allow_null=True,
        help_text="The cartridge's scanned GS1 UDI, in place of tip_lot.",
    )
    handpiece = ClinicRelatedField(
        queryset=Handpiece.objects.all(), required=False, allow_null=True, default=None
    )
    depths = DepthSerializer(many=True, allow_empty=False)
    notes = CharField(
        max_length=rules.NOTES_MAX_LENGTH, required=False, allow_blank=True, default=""
    )
    depth_override_reason = CharField(
        max_length=rules.REASON_MAX_LENGTH, required=False, allow_blank=True, default=""
    )
    performed_at = DateTimeField(required=False, default=None)
    acknowledged_warnings = serializers.ListField(
        child=ChoiceField(choices=WARNING_CODES),
        required=False,
        default=list,
        help_text="Every warning of the patient's screening in force, acknowledged by the "
        "provider (else 422 warnings_not_acknowledged).",
    )

    def validate(self, attrs: dict) -> dict:
        if (attrs["tip_lot"] is None) == (attrs["tip_barcode"] is None):
            raise serializers.ValidationError(
                {"tip_lot": ["Give the cartridge's tip_lot or its tip_barcode (one of them)."]}
            )
        return attrs


class ScanInputSerializer(Serializer):
    barcode = BarcodeField()


class AmendmentInputSerializer(Serializer):
    reason = CharField(max_length=rules.REASON_MAX_LENGTH)
    notes = CharField(max_length=rules.NOTES_MAX_LENGTH, required=False, allow_blank=True)
    depths = DepthSerializer(many=True, allow_empty=False, required=False)
    depth_override_reason = CharField(
        max_length=rules.REASON_MAX_LENGTH, required=False, allow_blank=True
    )


class AmendmentSerializer(ModelSerializer):
    class Meta:
        model = TreatmentAmendment
        fields = ["id", "amended_at", "amended_by", "reason", "changes"]


@extend_schema_field(DepthSerializer(many=True))
class DepthRowsField(serializers.Field):
    """A record's depths as `treatments.selectors.depth_rows` has them, already in
    DepthSerializer's shape (no serializer per depth)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, record: TreatmentRecord) -> list[dict[str, str]]:
        return selectors.depth_rows(record)


class TreatmentRecordSerializer(ModelSerializer):
    depths = DepthRowsField()
    amendments = AmendmentSerializer(many=True, read_only=True)

    class Meta:
        model = TreatmentRecord
        fields = [
            "id",
            "session",
            "patient",
            "tip_lot",
            "lot_number",
            "lot_expires_on",
            "serial_number",
            "handpiece",
            "handpiece_serial",
            "depths",
            "depth_override_reason",
            "notes",
            "performed_at",
            "provider",
            "recorded_at",
            "acknowledged_warnings",
            "amendments",
        ]


class ScanSerializer(Serializer):
    gtin = CharField()
    lot_number = CharField()
    expires_on = DateField()
    serial_number = CharField(allow_null=True)
    tip_lot = TipLotSerializer(allow_null=True, help_text="The clinic's matching lot, or null.")


class AftercareSerializer(Serializer):
    session = UUIDField()
    steps = AftercareStepSerializer(many=True)


class RecallInputSerializer(Serializer):
    reason = CharField(max_length=rules.RECALL_REASON_MAX_LENGTH)


class AffectedPatientSerializer(Serializer):
    id = UUIDField()
    first_name = CharField()
    last_name = CharField()
    email = CharField()
    phone = CharField()
    sessions = serializers.ListField(child=UUIDField())


class RecallSerializer(Serializer):
    lot_number = CharField()
    recalled_at = DateTimeField()
    affected_sessions = IntegerField(help_text="How many sessions used the lot.")
    affected_patients = AffectedPatientSerializer(many=True)


class RecallNoticeSerializer(ModelSerializer):
    tip_lot = UUIDField(source="tip_lot_id", read_only=True)

    class Meta:
        model = RecallNotice
        fields = [
            "id",
            "source",
            "source_id",
            "tip_lot",
            "lot_number",
            "reason",
            "product_description",
            "status",
            "created_at",
            "resolved_at",
            "resolved_by",
            "dismiss_reason",
        ]
        read_only_fields = fields


class ConfirmNoticeInputSerializer(Serializer):
    reason = CharField(
        max_length=2000,
        required=False,
        allow_blank=True,
        default="",
        help_text="Why the lot is recalled; the recall's own reason when left out.",
    )


class DismissNoticeInputSerializer(Serializer):
    reason = CharField(max_length=2000)
