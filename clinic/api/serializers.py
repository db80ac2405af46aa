from rest_framework import serializers

from clinic.models import Clinic, Handpiece, Role, Room, User
from clinic.services import CLINIC_SETTINGS_FIELDS


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()


class ClinicSerializer(serializers.ModelSerializer):
    screening_valid_days = serializers.IntegerField(min_value=1, max_value=730, required=False)
    min_interval_days = serializers.IntegerField(min_value=1, max_value=365, required=False)
    default_interval_days = serializers.IntegerField(min_value=1, max_value=365, required=False)
    isotretinoin_washout_months = serializers.IntegerField(
        min_value=0, max_value=60, required=False
    )
    reminder_lead_hours = serializers.IntegerField(min_value=1, max_value=336, required=False)

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
