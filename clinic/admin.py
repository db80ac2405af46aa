"""The back office. A clinic admin sees and edits only their own clinic's records; the audit
trail is read-only here as everywhere."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from clinic import services
from clinic.errors import InvalidInput
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
    """Adds and edits go through the same services as the API (their rules, their audit
    events); nothing is deleted (deactivate instead). Subclasses name the services."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def precheck(self, request: HttpRequest, obj: Any, cleaned: dict[str, Any]) -> None:
        """The service's own pre-check (raises InvalidInput), so the form shows its refusal."""

    def create(self, request: HttpRequest, obj: Any, cleaned: dict[str, Any]) -> Any:
        raise NotImplementedError

    def update(self, request: HttpRequest, obj: Any, changes: dict[str, Any]) -> Any:
        raise NotImplementedError

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        model_admin = self

        class ServiceCheckedForm(form_class):  # type: ignore[misc,valid-type]
            def clean(self) -> dict[str, Any]:
                cleaned: dict[str, Any] = super().clean()
                if not self.errors:
                    try:
                        model_admin.precheck(request, self.instance, cleaned)
                    except InvalidInput as exc:
                        for field, messages in exc.extra["errors"].items():
                            self.add_error(field if field in self.fields else None, messages)
                return cleaned

        return ServiceCheckedForm

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            changes = {name: form.cleaned_data[name] for name in form.changed_data}
            saved = self.update(request, obj, changes)
        else:
            saved = self.create(request, obj, form.cleaned_data)
        obj.pk = saved.pk

    def _deactivated(self, request: HttpRequest, obj: Any, cleaned: dict[str, Any]) -> Any:
        """Created active (as the API does); unticked in the add form, it is then deactivated."""
        if cleaned.get("is_active") is False:
            return self.update(request, obj, {"is_active": False})
        return obj

    def _clinic_id(self, request: HttpRequest, obj: Any, cleaned: dict[str, Any]) -> Any:
        if request.user.is_superuser:
            clinic = cleaned.get("clinic")
            return clinic.pk if clinic else obj.clinic_id
        return request.user.clinic_id


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

    def precheck(self, request: HttpRequest, obj: Any, cleaned: dict[str, Any]) -> None:
        clinic_id = self._clinic_id(request, obj, cleaned)
        services.check_room_name(clinic_id=clinic_id, name=cleaned["name"], room_id=obj.pk)

    def create(self, request: HttpRequest, obj: Any, cleaned: dict[str, Any]) -> Any:
        clinic_id = self._clinic_id(request, obj, cleaned)
        room = services.create_room(
            actor=request.user, name=cleaned["name"], clinic_id=clinic_id, via="admin"
        )
        return self._deactivated(request, room, cleaned)

    def update(self, request: HttpRequest, obj: Any, changes: dict[str, Any]) -> Any:
        return services.update_room(actor=request.user, room=obj, changes=changes, via="admin")


@admin.register(Handpiece)
class HandpieceAdmin(EditableAdmin):
    list_display = ("serial_number", "is_active")
    fields = ("serial_number", "is_active")

    def precheck(self, request: HttpRequest, obj: Any, cleaned: dict[str, Any]) -> None:
        clinic_id = self._clinic_id(request, obj, cleaned)
        serial = cleaned["serial_number"]
        services.check_handpiece_serial(
            clinic_id=clinic_id, serial_number=serial, handpiece_id=obj.pk
        )

    def create(self, request: HttpRequest, obj: Any, cleaned: dict[str, Any]) -> Any:
        clinic_id = self._clinic_id(request, obj, cleaned)
        serial = cleaned["serial_number"]
        handpiece = services.create_handpiece(
            actor=request.user, serial_number=serial, clinic_id=clinic_id, via="admin"
        )
        return self._deactivated(request, handpiece, cleaned)

    def update(self, request: HttpRequest, obj: Any, changes: dict[str, Any]) -> Any:
        return services.update_handpiece(
            actor=request.user, handpiece=obj, changes=changes, via="admin"
        )


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "actor_label", "action", "object_type", "object_id", "outcome")
    list_filter = ("outcome", "action")
    search_fields = ("object_id", "request_id", "actor_label")
    date_hierarchy = "at"
