"""The back office. A clinic admin sees and edits only their own clinic's records; the audit
trail is read-only here as everywhere."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from clinic import audit
from clinic.models import AuditEvent, Clinic, Handpiece, Room, User


class ClinicScopedAdmin(admin.ModelAdmin):
    """Filters every list and lookup to the signed-in admin's clinic."""

    clinic_field = "clinic"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.clinic_field}_id": request.user.clinic_id})

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        return (self.clinic_field,) if not request.user.is_superuser else ()


class ReadOnlyAdmin(ClinicScopedAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EditableAdmin(ClinicScopedAdmin):
    """Adds and edits are audited; nothing is deleted (deactivate instead)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change and not request.user.is_superuser:
            obj.clinic_id = request.user.clinic_id
        super().save_model(request, obj, form, change)
        audit.record(
            actor=request.user,
            clinic_id=obj.clinic_id,
            action=f"{obj._meta.model_name}.{'update' if change else 'create'}",
            object_type=obj._meta.model_name,
            object_id=obj.pk,
            detail={"via": "admin", "fields": sorted(form.changed_data)},
        )


@admin.register(Clinic)
class ClinicAdmin(ReadOnlyAdmin):
    list_display = ("name", "timezone", "screening_valid_days", "min_interval_days")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = admin.ModelAdmin.get_queryset(self, request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(pk=request.user.clinic_id)

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        return ()


@admin.register(User)
class StaffAdmin(ReadOnlyAdmin):
    list_display = ("username", "full_name", "role", "is_active", "last_login")
    list_filter = ("role", "is_active")
    search_fields = ("username", "full_name")
    fields = ("username", "full_name", "role", "is_active", "last_login", "date_joined")


@admin.register(Room)
class RoomAdmin(EditableAdmin):
    list_display = ("name", "is_active")
    fields = ("name", "is_active")


@admin.register(Handpiece)
class HandpieceAdmin(EditableAdmin):
    list_display = ("serial_number", "is_active")
    fields = ("serial_number", "is_active")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "actor_label", "action", "object_type", "object_id", "outcome")
    list_filter = ("outcome", "action")
    search_fields = ("object_id", "request_id", "actor_label")
    date_hierarchy = "at"
