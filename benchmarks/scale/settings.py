"""The API's settings, served with the benchmark's URLs (the API and its floor) and a query
count on every response (`X-Queries`)."""

from clinic.settings import *  # noqa: F403
from clinic.settings import MIDDLEWARE

ROOT_URLCONF = "benchmarks.scale.urls"
MIDDLEWARE = [
    "benchmarks.scale.floor.QueryCountMiddleware",
    "benchmarks.scale.floor.FloorMiddleware",
    *MIDDLEWARE,
]
# Seeding creates a hundred clinics' admins: a fast hasher for the benchmark's own users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
