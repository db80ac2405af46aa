from drf_spectacular.utils import extend_schema_field

from clinic.api.fields import (
    CharField,
    ChoiceField,
    DateTimeField,
    EmailField,
    IntegerField,
    ModelSerializer,
    Serializer,
)
from clinic.models import Clinic, Handpiece, Room, User, validate_timezone
from clinic.rules import CLINIC_SETTING_RANGES, Role
from clinic.services import CLINIC_SETTINGS_FIELDS


class TokenRequestSerializer(Serializer):
    username = CharField(max_length=150)
    password = CharField(max_length=4096, trim_whitespace=False)
    otp = CharField(
        max_length=16,
        required=False,
        allow_blank=True,
        help_text="The current TOTP code: required when the user has a confirmed TOTP device.",
    )
    device_token = CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        allow_null=True,
        help_text="The device token (X-Device-Token response header) of an earlier login of this "
        "user from this client; or send it as the X-Device-Token request header. Its attempts "
        "are counted on their own: others' failed logins on the username do not delay it.",
    )


class TokenSerializer(Serializer):
    token = CharField()
    expires_at = DateTimeField(
        help_text="The latest moment the token works (TOKEN_TTL_HOURS after issue). It stops "
        "earlier after TOKEN_IDLE_MINUTES without a request, and at logout."
    )


def _setting_field(name: str) -> IntegerField:
    allowed = CLINIC_SETTING_RANGES[name]
    return IntegerField(min_value=allowed.min, max_value=allowed.max, required=False)


@extend_schema_field(
    {
        "type": "string",
        "maxLength": 64,
        "pattern": r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$",
        "description": "An IANA time zone name, e.g. America/New_York (400 if unknown).",
    }
)
class TimezoneField(CharField):
    """An IANA zone name (the schema gives its shape; a list of every zone would name a
    generated client's enum members ambiguously, GMT0 and GMT-0)."""

    def __init__(self, **kwargs):
        super().__init__(max_length=64, validators=[validate_timezone], **kwargs)


class ClinicSerializer(ModelSerializer):
    timezone = TimezoneField()
    screening_valid_days = _setting_field("screening_valid_days")
    min_interval_days = _setting_field("min_interval_days")
    default_interval_days = _setting_field("default_interval_days")
    isotretinoin_washout_months = _setting_field("isotretinoin_washout_months")
    reminder_lead_hours = _setting_field("reminder_lead_hours")

    class Meta:
        model = Clinic
        fields = ["id", *CLINIC_SETTINGS_FIELDS]
        read_only_fields = ["id"]


# Input and output serializers (HackSoft's InputSerializer/OutputSerializer): the input says the
# shape of a POST body and nothing else (uniqueness is the service's rule, checked
# case-insensitively and answered in the contract's format); the output is the model as shown.


class StaffInputSerializer(Serializer):
    username = CharField(
        max_length=150,
        validators=[User.username_validator],
        help_text=User._meta.get_field("username").help_text,
    )
    password = CharField(write_only=True, max_length=128, trim_whitespace=False)
    full_name = CharField(max_length=200, required=False, allow_blank=True, default="")
    role = ChoiceField(choices=Role.choices)
    email = EmailField(max_length=254, required=False, allow_blank=True, default="")


class StaffSerializer(ModelSerializer):
    role = ChoiceField(choices=Role.choices, read_only=True)
    # Optional: "" when the staff member has none (read-only fields lose the model's blank=True).
    email = EmailField(read_only=True, allow_blank=True)

    class Meta:
        model = User
        fields = ["id", "username", "full_name", "role", "email"]
        read_only_fields = fields


class RoomInputSerializer(Serializer):
    name = CharField(max_length=100)


class RoomSerializer(ModelSerializer):
    class Meta:
        model = Room
        fields = ["id", "name"]
        read_only_fields = fields


class HandpieceInputSerializer(Serializer):
    serial_number = CharField(max_length=64)


class HandpieceSerializer(ModelSerializer):
    class Meta:
        model = Handpiece
        fields = ["id", "serial_number"]
        read_only_fields = fields
