from django.apps import AppConfig


class ClinicConfig(AppConfig):
    name = "clinic"
    verbose_name = "Clinic, staff and audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery.signals import task_prerun
        from django.contrib.auth.signals import user_logged_in, user_login_failed
        from django.core.signals import request_started

        from clinic import audit, checks, logs  # noqa: F401 - registers the system checks

        # The log filter's known patient values are per request and per task.
        request_started.connect(logs.forget, dispatch_uid="clinic.logs.request")
        task_prerun.connect(logs.forget, dispatch_uid="clinic.logs.task", weak=False)

        # Logins to the back office are audited like the API's (clinic/audit.py).
        user_logged_in.connect(audit.record_session_login, dispatch_uid="clinic.audit.login")
        user_login_failed.connect(
            audit.record_session_login_failure, dispatch_uid="clinic.audit.login_failed"
        )
