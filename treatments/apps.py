from django.apps import AppConfig


class TreatmentsConfig(AppConfig):
    name = "treatments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from clinic.audit import register_chain
        from clinic.services import on_clinic_created
        from scheduling.notifications.models import NotificationKind
        from scheduling.notifications.texts import register_staff_text
        from treatments.integrity import TREATMENT_CHAIN
        from treatments.recalls import notice_text
        from treatments.services import seed_default_aftercare_template

        on_clinic_created(seed_default_aftercare_template)
        # The outbox (in scheduling, below us) sends the admins' recall-notice emails.
        register_staff_text(NotificationKind.RECALL_NOTICE, notice_text)
        # verify_audit (in clinic, below us) walks the treatment records' chain too.
        register_chain(TREATMENT_CHAIN)
