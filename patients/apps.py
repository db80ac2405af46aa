from typing import Any

from django.apps import AppConfig


class PatientsConfig(AppConfig):
    name = "patients"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_init

        from patients.models import Patient

        # Every patient this request or task touches is known to the log filter, which
        # redacts their names, email, phone and date of birth from any record (clinic.logs).
        post_init.connect(_remember_patient, sender=Patient, dispatch_uid="patients.logs")


def _remember_patient(sender: Any, instance: Any, **kwargs: Any) -> None:
    from clinic import logs

    logs.remember(*instance.identifying_values())
