"""The Celery app. Settings live in clinic/settings.py under the CELERY_ namespace."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")

app = Celery("clinic")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_process_init.connect
def _start_heartbeat(**kwargs: object) -> None:
    """Each worker process (after the fork) says it is alive (clinic/liveness.py)."""
    from clinic import liveness

    liveness.start_heartbeat()
