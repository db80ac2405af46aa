from rest_framework import serializers

from clinic.api.fields import (
    BooleanField,
    CharField,
    DateField,
    EmailField,
    IntegerField,
    ModelSerializer,
    Serializer,
)
from patients.models import Patient, Screening
from patients.rules import CONTRAINDICATION_ANSWERS, FITZPATRICK_TYPES, WARNING_ANSWERS
from patients.services import PATIENT_FIELDS


class PatientSerializer(ModelSerializer):
    fitzpatrick_type = IntegerField(min_value=FITZPATRICK_TYPES[0], max_value=FITZPATRICK_TYPES[-1])
    email = EmailField(max_length=254, required=False, allow_blank=True, default="")
    phone = CharField(max_length=32, required=False, allow_blank=True, default="")
    sms_opt_in = BooleanField(required=False, default=False)
    email_opt_in = BooleanField(required=False, default=False)
    archived = serializers.SerializerMethodField()

    class Meta:
        model = Patient
        fields = [
            "id",
            *PATIENT_FIELDS,
            "archived",
            "archived_at",
            "created_at",
        ]
        read_only_fields = ["id", "archived", "archived_at", "created_at"]

    def get_archived(self, patient: Patient) -> bool:
        return patient.is_archived


class ScreeningSerializer(ModelSerializer):
    """The questionnaire in, the stored result out. Every answer defaults to false."""

    screened_by = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Screening
        fields = [
            "id",
            "patient",
            "screened_at",
            "screened_by",
            *CONTRAINDICATION_ANSWERS,
            "isotretinoin_last_dose_on",
            *WARNING_ANSWERS,
            "eligible",
            "contraindications",
            "warnings",
            "valid_until",
            "eligible_from",
        ]
        read_only_fields = [
            "id",
            "patient",
            "screened_at",
            "screened_by",
            "eligible",
            "contraindications",
            "warnings",
            "valid_until",
            "eligible_from",
        ]
        extra_kwargs = {
            **{name: {"required": False} for name in (*CONTRAINDICATION_ANSWERS, *WARNING_ANSWERS)},
            "isotretinoin_last_dose_on": {"required": False, "allow_null": True},
        }


class EligibilityQuerySerializer(Serializer):
    on = DateField(required=False)


class EligibilitySerializer(Serializer):
    eligible = BooleanField()
    reasons = serializers.ListField(child=CharField())
    valid_until = DateField(allow_null=True)
    eligible_from = DateField(allow_null=True)
