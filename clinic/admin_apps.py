from django.contrib.admin.apps import AdminConfig


class ClinicAdminConfig(AdminConfig):
    """Django's admin, with the back office's site (TOTP required, the shared lockout) as
    `admin.site`, so `@admin.register` in every app registers on it."""

    default_site = "clinic.admin_site.ClinicAdminSite"
