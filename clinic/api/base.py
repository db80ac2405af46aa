"""The base every API view builds on: clinic scoping, roles, idempotent POST, denied-access audit.

Scoping is the default, not a thing a view remembers: `ClinicScopedViewSet.get_queryset` filters
the view's queryset to the user's clinic, so another clinic's object is simply not found (404).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from django.http import Http404
from rest_framework import serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from clinic import audit
from clinic.api import idempotency
from clinic.api.permissions import ADMIN, ALL_ROLES
from clinic.models import AuditOutcome
from clinic.plain_sql import CompiledQuery


class ClinicAPIView(APIView):
    """APIView with idempotent POSTs (the middleware) and audited refusals. Subclasses declare
    their roles."""

    read_roles: frozenset[str] = ALL_ROLES
    write_roles: frozenset[str] = ADMIN
    action_roles: dict[str, frozenset[str]] = {}
    # Views over patient data name the object type so a refusal leaves an audit event.
    audit_object_type: str = ""

    # POSTs with an Idempotency-Key run through clinic.api.idempotency.IdempotencyMiddleware.
    idempotent = True

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # Authentication, roles and throttles let it through: the handler's answer is the one
        # an Idempotency-Key stores (a refusal before it is stored nowhere).
        setattr(request._request, idempotency.HANDLER_REACHED, True)

    def permission_denied(
        self, request: Request, message: str | None = None, code: str | None = None
    ) -> None:
        user = request.user
        if self.audit_object_type and user and user.is_authenticated and user.clinic_id:
            verb = getattr(self, "action", None) or request.method.lower()
            audit.record(
                actor=user,
                action=f"{self.audit_object_type}.{verb}",
                object_type=self.audit_object_type,
                object_id=str(self.kwargs.get("pk", "")),
                outcome=AuditOutcome.DENIED,
            )
        super().permission_denied(request, message, code)


class CreateThroughServiceMixin:
    """`POST` a new object: the serializer checks the shape, `create_service(actor=, **fields)`
    writes it (rules, audit), and the answer is 201 with the object as the serializer shows it."""

    # The shape is checked by `input_serializer_class` (a plain Serializer: uniqueness is the
    # service's rule), the answer shown by the view's (output) serializer; the view names both
    # for the schema with `extend_schema_view(create=...)`.

    create_service: Callable[..., Any]
    input_serializer_class: type[serializers.Serializer]

    def create(self, request: Request) -> Response:
        body = self.input_serializer_class(data=request.data)
        body.is_valid(raise_exception=True)
        created = self.create_service(actor=request.user, **body.validated_data)
        return Response(self.get_serializer(created).data, status=201)  # type: ignore[attr-defined]


class ClinicScopedViewSet(ClinicAPIView, viewsets.GenericViewSet):
    """A viewset over one model that has a `clinic` foreign key."""

    lookup_value_regex = "[0-9a-fA-F-]{36}"

    @classmethod
    def scoped_queryset(cls, clinic_id: uuid.UUID) -> QuerySet[Any]:
        """The view's queryset in one clinic: where every read of the view starts. A function
        of the clinic alone (it never looks at the request), so a view may compile it once
        (`PatientDataViewSet.compiled_retrieve`); views add their annotations here."""
        if cls.queryset is None:
            raise ImproperlyConfigured(f"{cls.__name__} has no queryset")
        return cls.queryset.all().filter(clinic_id=clinic_id)

    def get_queryset(self) -> QuerySet[Any]:
        return self.scoped_queryset(self.request.user.clinic_id)

    def compiled_object(self) -> Any:
        """What `get_object()` answers, by the view's lookup compiled once (by primary key in
        `scoped_queryset`, clinic.plain_sql.CompiledQuery) instead of built per request: for
        views whose object is `scoped_queryset`'s alone (no get_queryset or filters of their
        own, which this lookup would not apply)."""
        view = type(self)
        if not _object_is_scoped_alone(view):
            raise TypeError(
                f"{view.__name__} reads its object through its own get_queryset or filters"
            )
        try:
            pk = uuid.UUID(str(self.kwargs[self.lookup_url_kwarg or self.lookup_field]))
        except ValueError:
            raise Http404 from None
        obj = _retrieve_query(view).first(clinic_id=self.request.user.clinic_id, pk=pk)
        if obj is None:
            raise Http404
        self.check_object_permissions(self.request, obj)
        return obj


class PatientDataViewSet(ClinicScopedViewSet):
    """A viewset over patient data: its list and retrieve leave one audit event per object
    read (HIPAA 164.312(b)), written in one query whatever the page size.

    Subclasses set `audit_object_type`; the object's patient is `obj.patient_id` unless
    `audited_patient_id` says otherwise. Mix in ListModelMixin/RetrieveModelMixin's routes by
    naming `list`/`retrieve` in the router as usual."""

    # Retrieve with the view's detail query compiled once (clinic.plain_sql.CompiledQuery)
    # instead of built per request: for views whose reads are `scoped_queryset` alone (no
    # get_queryset of their own), looked up by primary key.
    compiled_retrieve = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.compiled_retrieve and not _object_is_scoped_alone(cls):
            raise TypeError(
                f"{cls.__name__}: compiled_retrieve needs reads that are scoped_queryset alone"
                " and a primary-key lookup"
            )

    def get_object(self) -> Any:
        if not self.compiled_retrieve or self.action != "retrieve":
            return super().get_object()
        return self.compiled_object()

    def audited_patient_id(self, obj: Any) -> uuid.UUID | None:
        return obj.patient_id

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # Filters shape the list; an id always finds its object (archived or not).
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    def audit_reads(self, objects: Any, verb: str) -> None:
        audit.record_reads(
            actor=self.request.user,
            action=f"{self.audit_object_type}.{verb}",
            object_type=self.audit_object_type,
            objects=[(obj.pk, self.audited_patient_id(obj)) for obj in objects],
        )

    def list_rows(self) -> Any:
        """What the list's page is cut from: the filtered queryset, or anything a paginator can
        slice as one (a view may read its most common list by a compiled query)."""
        return self.filter_queryset(self.get_queryset())

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.list_rows())
        self.audit_reads(page, "list")
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        obj = self.get_object()
        self.audit_reads([obj], "read")
        return Response(self.get_serializer(obj).data)

    def _respond(self, obj: Any, status: int = 200) -> Response:
        """A written object as the list shows it (with its computed fields), re-read once."""
        return Response(self.get_serializer(self.get_queryset().get(pk=obj.pk)).data, status)


@functools.cache
def _object_is_scoped_alone(view: type[ClinicScopedViewSet]) -> bool:
    """Whether DRF's get_object() would read the view's object from `scoped_queryset` by
    primary key alone: no get_queryset of its own, and no filter applied to a detail read (a
    filterset or filter_queryset of its own; PatientDataViewSet applies filters to lists only)."""
    if view.get_queryset is not ClinicScopedViewSet.get_queryset or view.lookup_field != "pk":
        return False
    if issubclass(view, PatientDataViewSet):
        return view.filter_queryset is PatientDataViewSet.filter_queryset
    filters = getattr(view, "filterset_class", None) or getattr(view, "filterset_fields", None)
    return view.filter_queryset is viewsets.GenericViewSet.filter_queryset and not filters


@functools.cache
def _retrieve_query(view: type[ClinicScopedViewSet]) -> CompiledQuery:
    return CompiledQuery(lambda *, clinic_id, pk: view.scoped_queryset(clinic_id).filter(pk=pk))


class ClinicRelatedField(serializers.PrimaryKeyRelatedField):
    """A reference by id to another object of the requesting user's clinic.

    An id from another clinic is refused exactly like one that does not exist.
    """

    default_error_messages = {
        "does_not_exist": "No such object in your clinic.",
        "incorrect_type": "Expected an id (UUID string), got {data_type}.",
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The lookup is compiled from the declared queryset alone (to_internal_value).
        super().__init_subclass__(**kwargs)
        if cls.get_queryset is not ClinicRelatedField.get_queryset:
            raise TypeError(f"{cls.__name__}: declare the queryset, do not override get_queryset")

    def get_queryset(self) -> QuerySet[Any]:
        queryset = super().get_queryset()
        request = self.context.get("request")
        if request is None or not request.user.is_authenticated:
            return queryset.none()
        return queryset.filter(clinic_id=request.user.clinic_id)

    def to_internal_value(self, data: Any) -> Any:
        try:
            pk = uuid.UUID(str(data))
        except ValueError:
            self.fail("does_not_exist", pk_value=data)
        request = self.context.get("request")
        if request is None or not request.user.is_authenticated:
            self.fail("does_not_exist", pk_value=data)
        # What get_queryset().get(pk=...) reads, by a query compiled once per declared queryset
        # (a constant of the serializer class that declares the field; the field's copies for
        # each serializer instance share it).
        declared = self.queryset
        query = _related_queries.get(declared)
        if query is None:
            query = _related_queries[declared] = CompiledQuery(
                lambda *, clinic_id, pk: declared.all().filter(clinic_id=clinic_id, pk=pk)
            )
        found = query.first(clinic_id=request.user.clinic_id, pk=pk)
        if found is None:
            self.fail("does_not_exist", pk_value=data)
        return found


# Keyed by the declared queryset object (querysets hash by identity); declared querysets live
# as long as their serializer classes, so the entries do too.
_related_queries: dict[QuerySet[Any], CompiledQuery] = {}
