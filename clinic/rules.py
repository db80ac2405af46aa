"""The clinic app's enums and limits, each defined once: models (and their constraints),
serializers and services import them from here. Pure values, no ORM.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import TextChoices


class Role(TextChoices):
    ADMIN = "admin", "Admin"
    FRONT_DESK = "front_desk", "Front desk"
    PROVIDER = "provider", "Provider"
    AUDITOR = "auditor", "Auditor"


class AuditOutcome(TextChoices):
    SUCCESS = "success", "Success"
    DENIED = "denied", "Denied"
    FAILED = "failed", "Failed"


REQUEST_ID_MAX_LENGTH = 64

# The longest spacing between two sessions of a series anyone plans (clinic settings and series).
MAX_INTERVAL_DAYS = 365


@dataclass(frozen=True)
class Range:
    min: int
    max: int

    def error(self, value: int) -> str | None:
        """The message for a value outside the range (DRF's wording), or None."""
        if value < self.min:
            return f"Ensure this value is greater than or equal to {self.min}."
        if value > self.max:
            return f"Ensure this value is less than or equal to {self.max}."
        return None


# A clinic's practice settings (defaults in domain.md): the allowed range of each. The model's
# check constraints, the API serializer and clinic.services.update_clinic all read this table.
CLINIC_SETTING_RANGES: Mapping[str, Range] = {
    "screening_valid_days": Range(1, 730),
    "min_interval_days": Range(1, MAX_INTERVAL_DAYS),
    "default_interval_days": Range(1, MAX_INTERVAL_DAYS),
    "isotretinoin_washout_months": Range(0, 60),
    "reminder_lead_hours": Range(1, 336),
}
DEFAULT_INTERVAL_BELOW_MINIMUM = "Must not be shorter than min_interval_days."


def clinic_setting_errors(values: Mapping[str, int]) -> dict[str, list[str]]:
    """Every range a clinic's settings break, by field."""
    errors: dict[str, list[str]] = {}
    for name, allowed in CLINIC_SETTING_RANGES.items():
        value = values.get(name)
        if value is not None and (message := allowed.error(value)):
            errors[name] = [message]
    minimum, default = values.get("min_interval_days"), values.get("default_interval_days")
    if (
        "default_interval_days" not in errors
        and minimum is not None
        and default is not None
        and default < minimum
    ):
        errors["default_interval_days"] = [DEFAULT_INTERVAL_BELOW_MINIMUM]
    return errors


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar day as aware UTC instants.

    Local midnight to the next local midnight, each resolved in the zone separately, so a day
    with a DST change is 23 or 25 hours long, as it really is.
    """
    start = datetime.combine(day, time.min, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)
