"""System checks of the clinic app (`manage.py check --deploy`)."""

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


@checks.register(checks.Tags.security, deploy=True)
def audit_signing_key(**kwargs: Any) -> list[checks.CheckMessage]:
    """Without a signing key no checkpoint is written (clinic/checkpoints.py)."""
    from clinic import checkpoints

    if not settings.AUDIT_SIGNING_KEY:
        return [
            checks.Warning(
                "AUDIT_SIGNING_KEY is not set: the audit chains get no signed checkpoints, so a "
                "consistent rewrite in the database would go unnoticed.",
                hint="manage.py audit_checkpoint --generate-key; keep it outside the database.",
                id="clinic.W001",
            )
        ]
    try:
        checkpoints.signing_key()
        checkpoints.verify_keys()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="clinic.E001")]
    return []
