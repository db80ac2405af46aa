from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Session.flags caches eligibility on each session's local date. Patients and clinic sit
        # below scheduling and cannot import it; they call back instead, inside the transaction
        # that changes an input (a screening, a date of birth, the clinic's time zone), so the
        # flags change with their cause.
        from django.core.signals import request_started
        from django.db.models.signals import post_delete, post_save

        from clinic.services import on_clinic_settings_changed
        from patients.services import on_eligibility_inputs_changed
        from scheduling import flags
        from scheduling.webhooks import outbox
        from scheduling.webhooks.models import WebhookEndpoint

        on_eligibility_inputs_changed(flags.refresh_flags_for_patient)
        on_clinic_settings_changed(flags.refresh_flags_for_clinic)
        # emit() reads a clinic's endpoints once per transaction: a write of one (the API, the
        # admin) makes the next event read them again, and so does each request (whatever
        # transaction a test's client requests share).
        for signal in (post_save, post_delete):
            signal.connect(
                _forget_endpoints, sender=WebhookEndpoint, dispatch_uid="scheduling.webhooks"
            )
        request_started.connect(
            outbox.forget_endpoints_of_request, dispatch_uid="scheduling.webhooks"
        )


def _forget_endpoints(sender, instance, **kwargs) -> None:
    from scheduling.webhooks import outbox

    outbox.forget_endpoints(instance.clinic_id)
