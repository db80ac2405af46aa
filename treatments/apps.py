from django.apps import AppConfig


class TreatmentsConfig(AppConfig):
    name = "treatments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from clinic.audit import register_chain
        from clinic.services import on_clinic_created
        from treatments.integrity import TREATMENT_CHAIN
        from treatments.services import seed_default_aftercare_template

        on_clinic_created(seed_default_aftercare_template)
        # verify_audit (in clinic, below us) walks the treatment records' chain too.
        register_chain(TREATMENT_CHAIN)
