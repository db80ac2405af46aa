"""Settings for the test suite: the real settings, a Redis database of its own, fast hashing."""

import os
from typing import Any

os.environ.setdefault("TESTING", "true")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
# Messages stay in memory (django.core.mail.outbox, scheduling.channels.outbox); a test that
# runs a real worker process points these at backends the test process can observe.
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
# A fixed signing key for the audit checkpoints (tests only: a real one comes from the environment).
os.environ.setdefault("AUDIT_SIGNING_KEY", "dGVzdC1vbmx5LWF1ZGl0LWNoZWNrcG9pbnQta2V5ISE=")
os.environ.setdefault("SMS_BACKEND", "scheduling.channels.LocmemSMSBackend")

from clinic.settings import *  # noqa: F403

# Each test client builds its own middleware, and WhiteNoise (autorefresh off) indexes every
# static file when it starts: ~60 ms a client. In autorefresh mode it looks files up only when a
# static URL is asked for, which no API test does.
WHITENOISE_AUTOREFRESH = True

# A test that runs its own worker gives test process and worker a Redis key prefix of their
# own, so other test runs sharing this Redis never take its tasks, nor it theirs.
if os.environ.get("CELERY_TEST_KEY_PREFIX"):
    from clinic import settings as _base

    _options: dict[str, Any] = dict(_base.CELERY_BROKER_TRANSPORT_OPTIONS)
    _options["global_keyprefix"] = os.environ["CELERY_TEST_KEY_PREFIX"]
    CELERY_BROKER_TRANSPORT_OPTIONS = _options

# A second alias on the test database, for the read-replica router's tests
# (tests/clinic/test_db_router.py); no router uses it unless a test switches one on.
DATABASES["replica"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}  # noqa: F405
