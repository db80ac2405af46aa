"""Settings for the test suite: the real settings, a Redis database of its own, fast hashing."""

import os

os.environ.setdefault("TESTING", "true")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")

from clinic.settings import *  # noqa: F403
