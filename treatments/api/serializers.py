from rest_framework import serializers

from treatments import rules
from treatments.models import AftercareTemplate, TipLot


class TipLotSerializer(serializers.ModelSerializer):
    quantity_received = serializers.IntegerField(min_value=1, max_value=100_000)
    gtin = serializers.RegexField(
        r"^\d{8}$|^\d{12,14}$", required=False, allow_blank=True, default=""
    )
    quantity_remaining = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField()

    class Meta:
        model = TipLot
        fields = [
            "id",
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

    def get_quantity_remaining(self, lot: TipLot) -> int:
        return lot.quantity_remaining

    def get_status(self, lot: TipLot) -> str:
        return rules.lot_status(
            expires_on=lot.expires_on,
            quantity_received=lot.quantity_received,
            quantity_used=lot.quantity_used,
            recalled=lot.recalled_at is not None,
            today=self.context["today"],
        )


class AftercareStepSerializer(serializers.Serializer):
    day_offset = serializers.IntegerField(min_value=0, max_value=365)
    product = serializers.CharField(max_length=100, allow_blank=True, required=False, default="")
    instruction = serializers.CharField(max_length=500)


class AftercareTemplateSerializer(serializers.ModelSerializer):
    steps = AftercareStepSerializer(many=True, allow_empty=False)
    is_default = serializers.BooleanField(required=False, default=False)

    class Meta:
        model = AftercareTemplate
        fields = ["id", "name", "is_default", "steps", "updated_at"]
        read_only_fields = ["id", "updated_at"]
        validators: list[object] = []
