from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Session.flags caches eligibility on each session's local date. Patients and clinic sit
        # below scheduling and cannot import it; they call back instead, inside the transaction
        # that changes an input (a screening, a date of birth, the clinic's time zone), so the
        # flags change with their cause.
        from clinic.services import on_clinic_settings_changed
        from patients.services import on_eligibility_inputs_changed
        from scheduling import flags

        on_eligibility_inputs_changed(flags.refresh_flags_for_patient)
        on_clinic_settings_changed(flags.refresh_flags_for_clinic)
