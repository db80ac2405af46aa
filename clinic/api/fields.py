"""The API's date and timestamp fields and filters: strict ISO 8601 (clinic.dates), used by
every serializer (ModelSerializer maps model date fields to them) and every query parameter
that takes a date."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django import forms
from django.db import models
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clinic.dates import (
    DATE_FORMAT,
    DATE_MESSAGE,
    DATETIME_FORMAT,
    DATETIME_MESSAGE,
    MAX_YEAR,
    MIN_YEAR,
    parse_date,
    parse_date_or_datetime,
    parse_datetime,
)

# --- Serializer fields ---------------------------------------------------------------------------


class DateField(serializers.DateField):
    """A date in, `YYYY-MM-DD` only; out as DRF writes it (ISO 8601)."""

    default_error_messages = {"invalid": DATE_MESSAGE}

    def to_internal_value(self, value: Any) -> date:
        try:
            return parse_date(value)
        except ValueError:
            self.fail("invalid")


class DateTimeField(serializers.DateTimeField):
    """A timestamp in, ISO 8601 with its offset only: without one, "10:00" could be the
    clinic's 10:00 or UTC's, hours apart, and a booking must not be guessed."""

    default_error_messages = {"invalid": DATETIME_MESSAGE}

    def to_internal_value(self, value: Any) -> datetime:
        try:
            parsed = parse_datetime(value)
        except ValueError:
            self.fail("invalid")
        return self.enforce_timezone(parsed)


class ModelSerializer(serializers.ModelSerializer):
    """DRF's ModelSerializer whose generated date and timestamp fields are the strict ones."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateField: DateField,
        models.DateTimeField: DateTimeField,
    }


# --- Query parameters (django-filter) ------------------------------------------------------------


class DateFormField(forms.Field):
    default_error_messages = {"invalid": DATE_MESSAGE}

    def to_python(self, value: Any) -> date | None:
        if value in (None, ""):
            return None
        try:
            return parse_date(value)
        except ValueError as exc:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from exc


class DateOrDateTimeFormField(forms.Field):
    default_error_messages = {
        "invalid": f"Enter a date as {DATE_FORMAT} or a timestamp as {DATETIME_FORMAT}, "
        f"year {MIN_YEAR} to {MAX_YEAR}."
    }

    def to_python(self, value: Any) -> date | datetime | None:
        if value in (None, ""):
            return None
        try:
            return parse_date_or_datetime(value)
        except ValueError as exc:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from exc


@extend_schema_field(OpenApiTypes.DATE)
class DateFilter(filters.Filter):
    """`?name=YYYY-MM-DD`."""

    field_class = DateFormField


@extend_schema_field(OpenApiTypes.STR)
class DateOrDateTimeFilter(filters.Filter):
    """`?name=` a date or an ISO 8601 timestamp with offset."""

    field_class = DateOrDateTimeFormField
