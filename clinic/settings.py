"""Settings, all read from the environment with working local defaults.

DJANGO_ENV=production switches on the hardened settings that `manage.py check --deploy`
expects, and then refuses to start without a real SECRET_KEY and ALLOWED_HOSTS.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
PRODUCTION = DJANGO_ENV == "production"
TESTING = env.bool("TESTING", default=False)

DEBUG = env.bool("DJANGO_DEBUG", default=not PRODUCTION)
_DEV_SECRET_KEY = "django-insecure-local-development-key-never-use-in-production"  # noqa: S105
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY)
if PRODUCTION and (
    SECRET_KEY.startswith("django-insecure-") or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5
):
    raise ImproperlyConfigured("DJANGO_ENV=production needs a SECRET_KEY of 50+ random characters")
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG must be off when DJANGO_ENV=production")

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ENV=production needs ALLOWED_HOSTS")

INSTALLED_APPS = [
    # The back office: Django's admin on a site that requires TOTP (clinic/admin_site.py).
    "clinic.admin_apps.ClinicAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "knox",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_guid",
    # Our apps, lowest layer first (see README, "Where things live").
    "clinic",
    "patients",
    "scheduling",
    "treatments",
]

MIDDLEWARE = [
    "django_guid.middleware.guid_middleware",
    # Outside ProblemDetailsMiddleware, so the problem bodies it makes get the header too.
    "clinic.middleware.NoStoreMiddleware",
    "clinic.middleware.ProblemDetailsMiddleware",
    "clinic.middleware.ServiceUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: it calls the view itself, inside the Idempotency-Key's transaction.
    "clinic.api.idempotency.IdempotencyMiddleware",
]

ROOT_URLCONF = "clinic.urls"
WSGI_APPLICATION = "clinic.wsgi.application"
AUTH_USER_MODEL = "clinic.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default="postgres://root@127.0.0.1:5432/clinic"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5
# JIT compiling costs tens of milliseconds on the few queries planned above jit_above_cost
# (the day view's count at a large clinic, exports) and never pays back on short queries.
DATABASES["default"]["OPTIONS"]["options"] = "-c jit=off"
# Parameters bound by the server, and a statement a connection runs more than five times
# prepared (psycopg): the token's lookup, a list's page, the slot reads are parsed once per
# connection, and planned once where PostgreSQL finds a generic plan as good as planning each
# call. A pooler in transaction mode must keep prepared statements for this (PgBouncer 1.22+
# with max_prepared_statements, libpq 17+); DATABASE_PREPARE_THRESHOLD="" turns them off.
DATABASES["default"]["OPTIONS"]["server_side_binding"] = True
_prepare_threshold = env.str("DATABASE_PREPARE_THRESHOLD", default="5").strip()
DATABASES["default"]["OPTIONS"]["prepare_threshold"] = (
    int(_prepare_threshold) if _prepare_threshold else None
)
# A streaming read replica for reads and exports (clinic/db_router.py): a request reads it
# until its first write; transactions, tasks and commands always use the primary.
if env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = env.db_url("DATABASE_REPLICA_URL")
    DATABASES["replica"]["CONN_MAX_AGE"] = DATABASES["default"]["CONN_MAX_AGE"]
    DATABASES["replica"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["replica"]["OPTIONS"] = dict(DATABASES["default"]["OPTIONS"])
    DATABASE_ROUTERS = ["clinic.db_router.ReplicaRouter"]
    MIDDLEWARE.insert(0, "clinic.db_router.ReplicaReadsMiddleware")

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    # Hashing is deliberately slow; tests create hundreds of users.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- API ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["clinic.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["clinic.api.permissions.HasRole"],
    "DEFAULT_PAGINATION_CLASS": "clinic.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["clinic.api.fields.FilterBackend"],
    "DEFAULT_RENDERER_CLASSES": ["clinic.api.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["clinic.api.parsers.DepthLimitedJSONParser"],
    "DEFAULT_METADATA_CLASS": "clinic.api.metadata.ClinicMetadata",
    "DEFAULT_SCHEMA_CLASS": "clinic.api.schema.ClinicAutoSchema",
    "EXCEPTION_HANDLER": "clinic.api.problems.problem_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "COERCE_DECIMAL_TO_STRING": True,
}

REST_KNOX = {
    "AUTH_HEADER_PREFIX": "Bearer",
    # The absolute lifetime of a token (the token response's `expires_at`).
    "TOKEN_TTL": timedelta(hours=env.int("TOKEN_TTL_HOURS", default=10)),
    # Idle logoff is clinic.authentication.TokenAuthentication's, not knox's AUTO_REFRESH.
    "AUTO_REFRESH": False,
    "TOKEN_LIMIT_PER_USER": None,
}
# A token unused this long stops working (HIPAA 164.312(a)(2)(iii)); 0 switches idle logoff off.
TOKEN_IDLE_MINUTES = env.int("TOKEN_IDLE_MINUTES", default=30)
# A token's idle deadline is moved on use at most this often (one write a minute, not a request).
TOKEN_REFRESH_INTERVAL_SECONDS = env.int("TOKEN_REFRESH_INTERVAL_SECONDS", default=60)

# Logins (API and back office, clinic.auth): this many failures per username (or per device
# token, or per client address) are let through at once; each further attempt waits a delay
# that starts at LOGIN_DELAY_BASE_SECONDS and doubles, up to LOGIN_DELAY_MAX_SECONDS, and is
# answered 429 with Retry-After meanwhile. Failures are forgotten a window after the last.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_FAILURE_LIMIT_PER_ADDRESS = env.int("LOGIN_FAILURE_LIMIT_PER_ADDRESS", default=50)
LOGIN_FAILURE_WINDOW_SECONDS = env.int("LOGIN_FAILURE_WINDOW_SECONDS", default=900)
LOGIN_DELAY_BASE_SECONDS = env.int("LOGIN_DELAY_BASE_SECONDS", default=60)
LOGIN_DELAY_MAX_SECONDS = env.int("LOGIN_DELAY_MAX_SECONDS", default=3600)
# Device tokens (signed, bound to a username) are good this long after a successful login.
DEVICE_TOKEN_MAX_AGE_DAYS = env.int("DEVICE_TOKEN_MAX_AGE_DAYS", default=90)
# Proxies in front of the app that append to X-Forwarded-For; 0: the client is REMOTE_ADDR.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# TOTP (django-otp): the name authenticator apps show for the account.
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="SkinPen clinic")

IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=48)

# A database or broker that does not answer: 503 `service_unavailable` with this Retry-After.
SERVICE_UNAVAILABLE_RETRY_AFTER_SECONDS = env.int(
    "SERVICE_UNAVAILABLE_RETRY_AFTER_SECONDS", default=5
)

# Phone numbers typed without a +country code are read in this region (ISO 3166 code).
PHONE_DEFAULT_REGION = env.str("PHONE_DEFAULT_REGION", default="US")

SPECTACULAR_SETTINGS = {
    "TITLE": "SkinPen clinic API",
    "DESCRIPTION": (
        "Treatment series, sessions, treatment records, tip lots, aftercare and audit for "
        "clinics running SkinPen microneedling. Errors are RFC 9457 problem details."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Operation ids without the version prefix: a generated client has `patients_list`.
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    # Stable names for enums the field names would not name well (a generated client's types),
    # or that share a field name (`status`, `action`) with other enums.
    "ENUM_NAME_OVERRIDES": {
        "ScreeningWarningEnum": "patients.rules.WARNING_CODES",
        "WebhookEventTypeEnum": "scheduling.webhooks.rules.WebhookEventType",
        "WebhookDeliveryStatusEnum": "scheduling.webhooks.rules.PUBLIC_DELIVERY_STATUSES",
        "InboundActionEnum": "scheduling.rules.InboundAction",
        "IndicationEnum": "scheduling.rules.Indication",
    },
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer"},
        }
    },
    "SECURITY": [{"bearerAuth": []}],
    "PREPROCESSING_HOOKS": ["clinic.api.schema.keep_literal_dollar"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "clinic.api.schema.add_links",
    ],
}

DJANGO_GUID = {
    "GUID_HEADER_NAME": "X-Request-ID",
    "VALIDATE_GUID": False,
    "RETURN_HEADER": True,
    "EXPOSE_HEADER": True,
    "UUID_LENGTH": 32,
}

# --- Celery ------------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A visibility timeout longer than any task: an unacked task is redelivered only after that.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# Publishing from a request must never hang it: the periodic scans re-find anything not sent.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TIMEZONE = "UTC"
# Workers log through LOGGING (its handlers redact patient data), not handlers of Celery's own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_ENABLE_UTC = True

NOTIFICATION_SCAN_SECONDS = env.int("NOTIFICATION_SCAN_SECONDS", default=60)
# One scan at a time creates notifications (a lease row, scheduling.notifications.scans); a scan
# that dies holding it is taken over once it lapses. Longer than a scan's creating part takes.
NOTIFICATION_SCAN_LEASE_SECONDS = env.int("NOTIFICATION_SCAN_LEASE_SECONDS", default=300)

# --- Signed audit checkpoints (clinic/checkpoints.py) -------------------------------------------
# Ed25519, base64 of the 32-byte private seed (`manage.py audit_checkpoint --generate-key`). Kept
# outside the database on purpose: empty means no checkpoint is written (check --deploy warns).
AUDIT_SIGNING_KEY = env.str("AUDIT_SIGNING_KEY", default="")
# Public halves (base64, comma-separated) of earlier signing keys, so their checkpoints verify.
AUDIT_VERIFY_KEYS = env.list("AUDIT_VERIFY_KEYS", default=[])
AUDIT_CHECKPOINT_SECONDS = env.int("AUDIT_CHECKPOINT_SECONDS", default=900)

# Exactly one beat runs; the schedule is static and every task it names is idempotent.
CELERY_BEAT_SCHEDULE = {
    "clinic.write_audit_checkpoints": {
        "task": "clinic.write_audit_checkpoints",
        "schedule": float(AUDIT_CHECKPOINT_SECONDS),
        "options": {"expires": float(AUDIT_CHECKPOINT_SECONDS)},
    },
    "clinic.purge_idempotency_keys": {
        "task": "clinic.purge_idempotency_keys",
        "schedule": 3600.0,
    },
    "scheduling.scan_notifications": {
        "task": "scheduling.scan_notifications",
        "schedule": float(NOTIFICATION_SCAN_SECONDS),
        # Scans queued while no worker ran are worth nothing once the next one is due.
        "options": {"expires": float(NOTIFICATION_SCAN_SECONDS)},
    },
}

# --- Recall watcher (treatments/recalls.py, treatments/recall_feed.py) --------------------------
# An endpoint answering like openFDA's device recall API; empty: the watcher is off. E.g.
# https://api.fda.gov/device/recall.json?search=product_code:"QAI" (SkinPen's product code).
RECALL_FEED_URL = env.str("RECALL_FEED_URL", default="")
RECALL_FEED_POLL_SECONDS = env.int("RECALL_FEED_POLL_SECONDS", default=21600)
# Per request; a poll makes at most RECALL_FEED_ATTEMPTS tries a page, waiting the backoff
# (doubling) between them, and reads at most RECALL_FEED_MAX_PAGES pages.
RECALL_FEED_TIMEOUT_SECONDS = env.float("RECALL_FEED_TIMEOUT_SECONDS", default=15.0)
RECALL_FEED_ATTEMPTS = env.int("RECALL_FEED_ATTEMPTS", default=3)
RECALL_FEED_RETRY_BACKOFF_SECONDS = env.float("RECALL_FEED_RETRY_BACKOFF_SECONDS", default=2.0)
RECALL_FEED_MAX_PAGES = env.int("RECALL_FEED_MAX_PAGES", default=10)
if RECALL_FEED_URL:
    CELERY_BEAT_SCHEDULE["treatments.poll_recall_feed"] = {
        "task": "treatments.poll_recall_feed",
        "schedule": float(RECALL_FEED_POLL_SECONDS),
        "options": {"expires": float(RECALL_FEED_POLL_SECONDS)},
    }

# --- Notifications (scheduling/notifications.py, scheduling/channels.py) -----------------------
# Email goes through Django's email backends: the console in development and for the run
# command; SMTP from EMAIL_URL (smtp+tls://user:password@host:587) or the EMAIL_* variables.
_email = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default=_email["EMAIL_BACKEND"])
EMAIL_HOST = env.str("EMAIL_HOST", default=_email.get("EMAIL_HOST") or "localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=_email.get("EMAIL_PORT") or 25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default=_email.get("EMAIL_HOST_USER") or "")
EMAIL_HOST_PASSWORD = env.str(
    "EMAIL_HOST_PASSWORD", default=_email.get("EMAIL_HOST_PASSWORD") or ""
)
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=bool(_email.get("EMAIL_USE_TLS")))
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=bool(_email.get("EMAIL_USE_SSL")))
# A send must end well inside NOTIFICATION_CLAIM_TIMEOUT_SECONDS.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="no-reply@localhost")
# SMS: the dotted path of a scheduling.channels.SMSBackend subclass (a provider's adapter),
# built with SMS_BACKEND_OPTIONS (a JSON object) as keyword arguments.
SMS_BACKEND = env.str("SMS_BACKEND", default="scheduling.channels.ConsoleSMSBackend")
SMS_BACKEND_OPTIONS = env.json("SMS_BACKEND_OPTIONS", default={})
# Replies (POST /api/v1/inbound/sms/) to the built-in backend are signed with this secret
# (X-Signature: sha256=<hex HMAC-SHA256 of the raw body>); empty: every reply is refused (403).
SMS_INBOUND_SECRET = env.str("SMS_INBOUND_SECRET", default="")
# A failed send is retried after 1, 2, 4... times the base delay (capped), then `failed`.
NOTIFICATION_MAX_ATTEMPTS = env.int("NOTIFICATION_MAX_ATTEMPTS", default=5)
NOTIFICATION_RETRY_BASE_SECONDS = env.int("NOTIFICATION_RETRY_BASE_SECONDS", default=60)
NOTIFICATION_RETRY_MAX_SECONDS = env.int("NOTIFICATION_RETRY_MAX_SECONDS", default=3600)
# A row claimed this long ago whose sender never reported back is reclaimed by the scan.
NOTIFICATION_CLAIM_TIMEOUT_SECONDS = env.int("NOTIFICATION_CLAIM_TIMEOUT_SECONDS", default=300)
# A worker process refreshes its heartbeat this often (clinic/liveness.py); a row it claimed is
# reclaimed once the heartbeat has lapsed (3 beats) and the claim is WORKER_DEAD_AFTER_SECONDS
# old, instead of waiting for the claim timeout.
WORKER_HEARTBEAT_SECONDS = env.float("WORKER_HEARTBEAT_SECONDS", default=5.0)
WORKER_DEAD_AFTER_SECONDS = env.int("WORKER_DEAD_AFTER_SECONDS", default=20)
# A message that has left is recorded `sent` through a database outage this long (retrying).
NOTIFICATION_RECORD_RETRY_SECONDS = env.int("NOTIFICATION_RECORD_RETRY_SECONDS", default=60)
# How many due rows one task sends before it hands the rest to a fresh task.
NOTIFICATION_SEND_BATCH = env.int("NOTIFICATION_SEND_BATCH", default=500)

# --- Webhooks (scheduling/webhooks/) -----------------------------------------------------------
# In production (DEBUG off and this false) a webhook URL must be https and must not resolve to a
# loopback, private, link-local or reserved address, checked at registration and at each send.
WEBHOOK_ALLOW_PRIVATE_URLS = env.bool("WEBHOOK_ALLOW_PRIVATE_URLS", default=not PRODUCTION)
# Connect, write and read, each; redirects are never followed.
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=5.0)
# Tries in all; the first retry WEBHOOK_RETRY_BASE_SECONDS after the first failure, doubling.
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)
WEBHOOK_RETRY_BASE_SECONDS = env.int("WEBHOOK_RETRY_BASE_SECONDS", default=30)
WEBHOOK_RETRY_MAX_SECONDS = env.int("WEBHOOK_RETRY_MAX_SECONDS", default=3600)
# A delivery claimed this long ago whose sender never reported back is reclaimed by the scan.
WEBHOOK_CLAIM_TIMEOUT_SECONDS = env.int("WEBHOOK_CLAIM_TIMEOUT_SECONDS", default=120)
# The beat's scan: how often, how many due deliveries at most, for how long at most.
WEBHOOK_SCAN_SECONDS = env.int("WEBHOOK_SCAN_SECONDS", default=30)
WEBHOOK_SEND_BATCH = env.int("WEBHOOK_SEND_BATCH", default=200)
WEBHOOK_SCAN_BUDGET_SECONDS = env.float("WEBHOOK_SCAN_BUDGET_SECONDS", default=120.0)
CELERY_BEAT_SCHEDULE["scheduling.scan_webhooks"] = {
    "task": "scheduling.scan_webhooks",
    "schedule": float(WEBHOOK_SCAN_SECONDS),
    "options": {"expires": float(WEBHOOK_SCAN_SECONDS)},
}

# --- The web worker's memory (clinic/memory.py) ------------------------------------------------
# Once the application is loaded, clinic.wsgi freezes what startup left out of the cyclic
# garbage collector and collects generation 0 after this many allocations instead of Python's
# 700; 0 keeps Python's thresholds.
GC_GEN0_THRESHOLD = env.int("GC_GEN0_THRESHOLD", default=7000)

# --- Logging -----------------------------------------------------------------------------------
# No patient data in logs: every handler has the redaction filter (clinic/logs.py), and a test
# fails for a handler without it.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "correlation_id": {"()": "django_guid.log_filters.CorrelationId"},
        "redact_patient_data": {"()": "clinic.logs.RedactPatientData"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s [%(correlation_id)s] %(name)s %(message)s"}
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["correlation_id", "redact_patient_data"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Django's own defaults attach handlers of theirs (console when DEBUG, mail_admins with the
    # request's data): replaced, so django.* goes through ours, like everything else.
    "loggers": {
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": [], "level": "INFO", "propagate": True},
        # django_guid says at INFO, on every request, whether the request brought an
        # X-Request-ID: a line per request that tells nothing the other lines do not (each
        # carries the id, as do the response header and the audit rows). 92 of an availability
        # read's 3,700 Python calls.
        "django_guid": {"level": "WARNING"},
    },
}

# --- Production hardening (manage.py check --deploy) --------------------------------------------
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
    SESSION_COOKIE_HTTPONLY = True
    # HIPAA 164.312(a)(2)(iii) automatic logoff for the back office.
    SESSION_COOKIE_AGE = 60 * 30
    SESSION_EXPIRE_AT_BROWSER_CLOSE = True
