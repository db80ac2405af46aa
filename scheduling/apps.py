from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Patients sits below scheduling and cannot import it; it calls back instead, inside the
        # transaction that records a screening, so session flags change with their cause.
        from patients.services import on_screening_recorded
        from scheduling import services

        on_screening_recorded(services.on_screening_recorded)
