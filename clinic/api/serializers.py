from rest_framework import serializers

from clinic.models import Clinic, Handpiece, Room, User
from clinic.rules import CLINIC_SETTING_RANGES, Role
from clinic.services import CLINIC_SETTINGS_FIELDS


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()


def _setting_field(name: str) -> serializers.IntegerField:
    allowed = CLINIC_SETTING_RANGES[name]
    return serializers.IntegerField(min_value=allowed.min, max_value=allowed.max, required=False)


class ClinicSerializer(serializers.ModelSerializer):
    screening_valid_days = _setting_field("screening_valid_days")
    min_interval_days = _setting_field("min_interval_days")
    default_interval_days = _setting_field("default_interval_days")
    isotretinoin_washout_months = _setting_field("isotretinoin_washout_months")
    reminder_lead_hours = _setting_field("reminder_lead_hours")

    class Meta:
        model = Clinic
        fields = ["id", *CLINIC_SETTINGS_FIELDS]
        read_only_fields = ["id"]


class StaffSerializer(serializers.ModelSerializer):
    password = serializers.CharField(write_only=True, max_length=128, trim_whitespace=False)
    full_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    role = serializers.ChoiceField(choices=Role.choices)

    class Meta:
        model = User
        fields = ["id", "username", "password", "full_name", "role"]
        read_only_fields = ["id"]
        # The service checks uniqueness (case-insensitively) and answers in the same format.
        extra_kwargs = {"username": {"validators": []}}


class RoomSerializer(serializers.ModelSerializer):
    class Meta:
        model = Room
        fields = ["id", "name"]
        read_only_fields = ["id"]
        validators: list[object] = []


class HandpieceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Handpiece
        fields = ["id", "serial_number"]
        read_only_fields = ["id"]
        validators: list[object] = []
