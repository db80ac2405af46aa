"""The API's date and timestamp fields and filters: strict ISO 8601 (clinic.dates), used by
every serializer (ModelSerializer maps model date fields to them) and every query parameter
that takes a date."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from django import forms
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.http import QueryDict
from django.utils.functional import cached_property
from django_filters import rest_framework as filters
from django_filters.filters import FilterMethod
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, relations, serializers
from rest_framework.relations import PKOnlyObject
from rest_framework.settings import api_settings

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


# --- JSON types, strictly -----------------------------------------------------------------------
# DRF's fields were written for form data too, where every value is text: its CharField takes
# 0, its IntegerField "5" and 5.0, its BooleanField 1 and "yes", its UUIDField an integer. The
# API speaks JSON only, and its schema says which JSON type each field takes; a body field of
# another type is 400. (A serializer reading query parameters, which are all text, is not held
# to it.)


def _from_json(field: serializers.Field) -> bool:
    return not isinstance(getattr(field.root, "initial_data", None), QueryDict)


class JSONTypeMixin:
    json_types: tuple[type, ...] = (str,)

    def to_internal_value(self, data: Any) -> Any:
        wrong = isinstance(data, bool) and bool not in self.json_types
        if _from_json(self) and (wrong or not isinstance(data, self.json_types)):  # type: ignore[arg-type]
            self.refuse(data)
        return super().to_internal_value(data)  # type: ignore[misc]

    def refuse(self, data: Any) -> None:
        self.fail("invalid")  # type: ignore[attr-defined]


class CharField(JSONTypeMixin, serializers.CharField):
    pass


class EmailField(JSONTypeMixin, serializers.EmailField):
    pass


class URLField(JSONTypeMixin, serializers.URLField):
    pass


class RegexField(JSONTypeMixin, serializers.RegexField):
    pass


class UUIDField(JSONTypeMixin, serializers.UUIDField):
    pass


class IntegerField(JSONTypeMixin, serializers.IntegerField):
    json_types = (int,)


class DecimalField(JSONTypeMixin, serializers.DecimalField):
    # The contract: depths are accepted as a JSON string or number.
    json_types = (str, int, float)


class ChoiceField(JSONTypeMixin, serializers.ChoiceField):
    def to_internal_value(self, data: Any) -> Any:
        self.json_types = (int,) if {type(key) for key in self.choices} == {int} else (str,)
        return super().to_internal_value(data)

    def refuse(self, data: Any) -> None:
        self.fail("invalid_choice", input=data)


class BooleanField(serializers.BooleanField):
    """JSON's `true` or `false` only. DRF's also takes 0, 1, "yes", "on" and more, which the
    schema's boolean forbids (and a client sending them has a bug to hear about)."""

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool) or not _from_json(self):
            return data if isinstance(data, bool) else super().to_internal_value(data)
        self.fail("invalid", input=data)


# --- Serializers: fields built once per class ------------------------------------------------


def _copy_field(field: serializers.Field) -> serializers.Field:
    """A fresh, unbound copy of a template field. A field that holds other fields (a nested
    serializer, a list's child, a many-relation) is deep-copied as DRF copies declared fields:
    its children are bound to it. Any other field is copied shallowly: its state is its
    constructor's arguments, which no field changes after __init__ (the validator list is
    copied all the same, as Field.validators is a settable list)."""
    if (
        isinstance(field, serializers.BaseSerializer)
        or hasattr(field, "child")
        or hasattr(field, "child_relation")
    ):
        return copy.deepcopy(field)
    fresh = copy.copy(field)
    if "_validators" in field.__dict__:
        fresh._validators = list(field._validators)
    return fresh


# Context key: the serializer is given rows read as `.values(*serializer.columns())`.
ROWS = "rows_of_columns"


class FieldTemplateMixin:
    """Fields built once per serializer class, copied for each instance.

    DRF builds an instance's fields anew each time (every request): a ModelSerializer reads
    its model's metadata and constructs each field, any serializer deep-copies its declared
    fields, which re-runs each field's __init__. What comes out depends on the class alone, so
    the first instance's fields are kept, unbound, as the class's template, and each instance
    binds copies of them."""

    def get_fields(self) -> dict[str, serializers.Field]:
        cls = type(self)
        template = cls.__dict__.get("_field_template")
        if template is None:
            template = super().get_fields()  # type: ignore[misc]
            cls._field_template = template  # type: ignore[attr-defined]
        return {name: _copy_field(field) for name, field in template.items()}

    @cached_property
    def _readable_fields(self) -> list[serializers.Field]:  # type: ignore[override]
        # DRF's is a generator over the fields' mapping, run again for every object of a list
        # (the child serializer's fields are fixed by then).
        return [field for field in self.fields.values() if not field.write_only]

    def to_representation(self, instance: Any) -> Any:
        """DRF's, with a model instance's plain columns read directly.

        DRF's Field.get_attribute walks `source_attrs` generically (mappings, callables,
        missing attributes) for every field of every object. For a field whose source is one
        of the model's columns (by name, or a foreign key's `_id`) that walk is a getattr, and a
        primary-key relation answers the column itself; those are read so, and written by the
        field's own to_representation or, for DRF's plain kinds, by what that method does
        (`_writer`), every other field as DRF reads it. Same values, same order
        (tests/clinic/test_read_plan.py).

        A ModelSerializer also takes rows of its model as `.values(*serializer.columns())`
        reads them (dicts by column), for a read-only list that need not make an instance per
        row, when its context says so (`ROWS`): written the same way. Any other dict (DRF's
        validated data, say) is read as DRF reads it."""
        if isinstance(instance, dict) and self.context.get(ROWS):
            return self._row_representation(instance)
        if not isinstance(instance, models.Model):
            return super().to_representation(instance)  # type: ignore[misc]
        ret: dict[str, Any] = {}
        for field, name, column, write in self._read_plan(type(instance)):
            if column is not None:
                value = getattr(instance, column)
                ret[name] = value if write is None or value is None else write(value)
                continue
            try:
                attribute = field.get_attribute(instance)
            except serializers.SkipField:
                continue
            check_for_none = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
            ret[name] = None if check_for_none is None else field.to_representation(attribute)
        return ret

    def columns(self) -> list[str]:
        """The model's columns this serializer's fields read, for `.values(*columns)`; every
        readable field must read one (else a row cannot show it)."""
        plan = self._read_plan(self.Meta.model)  # type: ignore[attr-defined]
        missing = [name for _field, name, column, _write in plan if column is None]
        if missing:
            raise TypeError(f"{type(self).__name__}: {missing} read no column of the model")
        return [column for _field, _name, column, _write in plan]

    def _row_representation(self, row: dict[str, Any]) -> dict[str, Any]:
        ret: dict[str, Any] = {}
        for _field, name, column, write in self._read_plan(self.Meta.model):  # type: ignore[attr-defined]
            value = row[column]
            ret[name] = value if write is None or value is None else write(value)
        return ret

    def _read_plan(self, model: type[models.Model]) -> list[tuple[Any, str, str | None, Any]]:
        """(field, its name, the column read directly or None, what writes the column's value:
        None for as it is), per readable field, once per serializer and model."""
        plans = self.__dict__.setdefault("_read_plans", {})
        if model not in plans:
            plan = []
            for field in self._readable_fields:
                column, pk_only = _column_of(field, model)
                write = None if pk_only else _writer(field) if column is not None else None
                plan.append((field, field.field_name, column, write))
            plans[model] = plan
        return plans[model]


def _writer(field: serializers.Field) -> Callable[[Any], Any] | None:
    """What `field.to_representation` returns for a column's value (not None), as a cheaper
    function where the field is one of DRF's plain kinds with that method unchanged; else the
    method itself. None: the value as it is."""
    method = type(field).to_representation
    if method is serializers.CharField.to_representation:
        return str
    if method is serializers.IntegerField.to_representation:
        return int
    if method is serializers.BooleanField.to_representation:
        # A bool is DRF's answer for itself (TRUE_VALUES and FALSE_VALUES hold True and False).
        return lambda value: (
            value if value is True or value is False else field.to_representation(value)
        )
    if method is serializers.UUIDField.to_representation and field.uuid_format == "hex_verbose":
        return str
    if method is serializers.JSONField.to_representation and not field.binary:
        return None
    if (
        method is serializers.DateTimeField.to_representation
        and _iso(getattr(field, "format", api_settings.DATETIME_FORMAT))
        and not hasattr(field, "timezone")
    ):
        return _timestamp_writer(field, field.default_timezone())
    if method is serializers.DateField.to_representation and _iso(
        getattr(field, "format", api_settings.DATE_FORMAT)
    ):
        return lambda value: (
            value.isoformat() if type(value) is date else field.to_representation(value)
        )
    return field.to_representation


def value_writer(field: serializers.Field) -> Callable[[Any], Any]:
    """What writes a (not None) value as `field.to_representation` does, for a view that writes
    many values of one field without a serializer per object (availability's slots)."""
    write = _writer(field)
    return write if write is not None else _as_it_is


def _as_it_is(value: Any) -> Any:
    return value


def _iso(output_format: Any) -> bool:
    return isinstance(output_format, str) and output_format.lower() == ISO_8601


def _timestamp_writer(field: serializers.DateTimeField, zone: Any) -> Callable[[Any], Any]:
    """DRF's DateTimeField output of an aware datetime, the field's time zone looked up once
    (DRF looks it up for every value): ISO 8601 in that zone, UTC written as Z."""
    if zone is None:
        return field.to_representation

    def write(value: Any) -> Any:
        if type(value) is not datetime or value.utcoffset() is None:
            return field.to_representation(value)  # text, or naive: DRF's own handling
        try:
            text = value.astimezone(zone).isoformat()
        except OverflowError:
            return field.to_representation(value)
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return write


def _column_of(field: serializers.Field, model: type[models.Model]) -> tuple[str | None, bool]:
    if len(field.source_attrs) != 1:
        return None, False
    try:
        model_field = model._meta.get_field(field.source_attrs[0])
    except FieldDoesNotExist:
        return None, False
    if not model_field.concrete:
        return None, False
    kind = type(field)
    if kind.get_attribute is serializers.Field.get_attribute:
        # getattr of a column: never a mapping, a callable or missing.
        return (
            (model_field.attname, False) if field.source == model_field.attname else (None, False)
        )
    if (
        isinstance(field, relations.PrimaryKeyRelatedField)
        and model_field.many_to_one
        and kind.get_attribute is relations.RelatedField.get_attribute
        and kind.to_representation is relations.PrimaryKeyRelatedField.to_representation
        and field.use_pk_only_optimization()
        and field.pk_field is None
    ):
        # DRF reads the foreign key's column (serializable_value) and answers it as the pk.
        return model_field.attname, True
    return None, False


class Serializer(FieldTemplateMixin, serializers.Serializer):
    pass


class ModelSerializer(FieldTemplateMixin, serializers.ModelSerializer):
    """DRF's ModelSerializer whose generated date, timestamp and boolean fields are the strict
    ones."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateField: DateField,
        models.DateTimeField: DateTimeField,
        models.BooleanField: BooleanField,
        models.CharField: CharField,
        models.TextField: CharField,
        models.EmailField: EmailField,
        models.URLField: URLField,
        models.UUIDField: UUIDField,
        models.IntegerField: IntegerField,
        models.SmallIntegerField: IntegerField,
        models.PositiveIntegerField: IntegerField,
        models.PositiveSmallIntegerField: IntegerField,
        models.DecimalField: DecimalField,
    }
    serializer_choice_field = ChoiceField


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


class BooleanFormField(forms.Field):
    """`true` or `false` as the schema's boolean is written; empty is absent. django-filter's
    own reads `2` or `yes` as "no filter", so a typo would list everything."""

    widget = forms.TextInput

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        if value in ("true", "false"):
            return value == "true"
        raise forms.ValidationError("Enter true or false.")


class BooleanFilter(filters.BooleanFilter):
    field_class = BooleanFormField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.TextInput)
        super().__init__(*args, **kwargs)


class FilterSet(filters.FilterSet):
    """django-filter's FilterSet, with what depends on the class alone made once per class.

    django-filter deep-copies the class's filters for every request and builds a new form
    class from them (about a thousand Python calls per list request, docs/benchmarks.md). A
    filter's state is its constructor's arguments plus the model and filterset it is bound to
    for the request, so the class's filters deep-copy as shallow copies (`_ShallowCopies`);
    and the form class only declares the filters' form fields, which every form instance
    deep-copies anyway, so it is built once (a filter whose choices depend on the request
    would need both back: tests/test_architecture.py refuses one). Every API filterset
    derives from this one (the same test)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        if not isinstance(cls.base_filters, _ShallowCopies):
            cls.base_filters = _ShallowCopies(cls.base_filters)
        super().__init__(*args, **kwargs)

    def get_form_class(self) -> type[forms.Form]:
        cls = type(self)
        form_class = cls.__dict__.get("_form_class")
        if form_class is None:
            form_class = cls._form_class = super().get_form_class()  # type: ignore[attr-defined]
        return form_class

    @classmethod
    def filters_anything(cls, data: QueryDict) -> bool:
        """Whether the filterset could change a list for a request's query `data`: some
        filter's parameter is in it (even empty), a filter is required, or the class filters
        by default (its own filter_queryset). Otherwise every filter would get an empty value
        and hand the queryset back as it was, so FilterBackend does not build the filterset
        and its form (tests/clinic/test_filters.py checks that premise for every filterset)."""
        if cls.filter_queryset is not FilterSet.filter_queryset:
            return True
        form_class = cls.__dict__.get("_form_class")
        if form_class is None:
            form_class = cls(queryset=cls._meta.model._default_manager.none()).get_form_class()
        return any(
            field.required or not _omitted(field.widget, data, name)
            for name, field in form_class.base_fields.items()
        )


def _omitted(widget: forms.Widget, data: QueryDict, name: str) -> bool:
    """No value of the widget's in the query. A widget reads its own name, a multi-widget
    (a range's two ends) its parts' names; a select-multiple is never sure it was omitted
    from a form, but from a query it is when its name is absent."""
    if isinstance(widget, forms.MultiWidget):
        return widget.value_omitted_from_data(data, {}, name)
    return name not in data


class FilterBackend(filters.DjangoFilterBackend):
    """django-filter's backend, without the filterset of a request that filters nothing
    (FilterSet.filters_anything): about half a millisecond of a list without parameters."""

    def filter_queryset(self, request: Any, queryset: Any, view: Any) -> Any:
        filterset_class = self.get_filterset_class(view, queryset)
        if (
            filterset_class is not None
            and issubclass(filterset_class, FilterSet)
            and not filterset_class.filters_anything(request.query_params)
        ):
            return queryset
        return super().filter_queryset(request, queryset, view)


class _ShallowCopies(dict):
    """A filterset class's filters, which django-filter's __init__ copies for each request:
    each copied shallowly (a `method=` filter's proxy rebound to its copy, whose parent is
    the request's filterset)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, filters.Filter]:
        copies = {}
        for name, filter_ in self.items():
            fresh = copy.copy(filter_)
            if isinstance(fresh.__dict__.get("filter"), FilterMethod):
                fresh.filter = FilterMethod(fresh)
            copies[name] = fresh
        return copies
