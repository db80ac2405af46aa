"""Shapes only: every rule lives in scheduling.services."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clinic.api.base import ClinicRelatedField
from clinic.api.fields import (
    BooleanField,
    CharField,
    ChoiceField,
    DateField,
    DateTimeField,
    IntegerField,
    ModelSerializer,
    Serializer,
    UUIDField,
)
from clinic.models import Room, User
from patients.models import Patient
from scheduling import rules, selectors
from scheduling.models import Series, Session
from scheduling.rules import Indication, SessionFlag


class SeriesSerializer(ModelSerializer):
    patient = ClinicRelatedField(queryset=Patient.objects.all())
    indication = ChoiceField(choices=Indication.choices)
    # Ranges are the service's rule (and a database constraint); here only the type.
    planned_sessions = IntegerField()
    interval_days = IntegerField(
        required=False,
        allow_null=True,
        help_text="Days between sessions; the clinic's default_interval_days when left out.",
    )
    sessions_completed = IntegerField(read_only=True)
    sessions_booked = IntegerField(
        read_only=True, help_text="Sessions booked or checked in, not yet completed."
    )
    next_due_on = serializers.SerializerMethodField(
        help_text=(
            "When the next not-yet-booked session is due: one interval after the latest booked "
            "or completed session, or the day the series was planned if none is; null when the "
            "series is not active or every planned session is booked or done."
        )
    )

    class Meta:
        model = Series
        fields = [
            "id",
            "patient",
            "indication",
            "planned_sessions",
            "interval_days",
            "status",
            "sessions_completed",
            "sessions_booked",
            "next_due_on",
        ]
        read_only_fields = ["id", "status"]

    @extend_schema_field(DateField(allow_null=True))
    def get_next_due_on(self, series):
        return selectors.next_due_on(series)


class SeriesCancelSerializer(Serializer):
    reason = CharField(
        max_length=rules.CANCEL_REASON_MAX_LENGTH, required=False, allow_blank=True, default=""
    )


class AttestationSerializer(Serializer):
    pregnant_or_nursing = BooleanField()
    active_skin_infection = BooleanField()
    open_wounds_in_area = BooleanField()
    attested_at = DateTimeField()
    attested_by = UUIDField(help_text="The staff member who checked the patient in.")


class CheckInSerializer(Serializer):
    """The day-of attestation: required when the clinic's day_of_attestation_required is on
    (the service's rule); any true refuses the check-in (422 patient_not_eligible)."""

    pregnant_or_nursing = BooleanField(required=False, allow_null=True, default=None)
    active_skin_infection = BooleanField(required=False, allow_null=True, default=None)
    open_wounds_in_area = BooleanField(required=False, allow_null=True, default=None)


class SessionSerializer(ModelSerializer):
    number = IntegerField(
        read_only=True,
        allow_null=True,
        help_text="Place among the series' booked and completed sessions; null when cancelled.",
    )
    duration_minutes = IntegerField(read_only=True)
    flags = serializers.ListField(
        child=ChoiceField(choices=SessionFlag.choices),
        read_only=True,
        help_text=(
            "screening_expired: the latest screening will have lapsed by the session date "
            "(re-screen before it); not_eligible: something else blocks treatment on that date; "
            "reschedule_requested: the patient replied R to a text (cleared when moved)."
        ),
    )

    attestation = serializers.SerializerMethodField(
        help_text="The day-of attestation given at check-in, or null."
    )

    class Meta:
        model = Session
        fields = [
            "id",
            "series",
            "patient",
            "provider",
            "room",
            "starts_at",
            "ends_at",
            "duration_minutes",
            "status",
            "number",
            "flags",
            "cancel_reason",
            "checked_in_at",
            "attestation",
            "confirmed_at",
        ]
        read_only_fields = fields

    @extend_schema_field(AttestationSerializer(allow_null=True))
    def get_attestation(self, session: Session) -> dict | None:
        attestation = session.attestation
        return None if attestation is None else AttestationSerializer(attestation).data


class BookingSerializer(Serializer):
    series = ClinicRelatedField(queryset=Series.objects.all())
    provider = ClinicRelatedField(
        queryset=User.objects.all(), help_text="A staff member with the provider role."
    )
    room = ClinicRelatedField(queryset=Room.objects.all(), required=False, allow_null=True)
    starts_at = DateTimeField()
    duration_minutes = IntegerField(default=rules.DEFAULT_DURATION_MINUTES)


class RescheduleSerializer(Serializer):
    starts_at = DateTimeField()
    duration_minutes = IntegerField(
        required=False, help_text="Default: the session's current duration."
    )
    provider = ClinicRelatedField(
        queryset=User.objects.all(), required=False, help_text="Default: the current provider."
    )
    room = ClinicRelatedField(
        queryset=Room.objects.all(),
        required=False,
        allow_null=True,
        help_text="Default: the current room; null for none.",
    )


class SessionCancelSerializer(Serializer):
    reason = CharField(
        max_length=rules.CANCEL_REASON_MAX_LENGTH, required=False, allow_blank=True, default=""
    )
