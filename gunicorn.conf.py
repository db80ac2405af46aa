"""gunicorn's settings for the API (`gunicorn -c gunicorn.conf.py clinic.wsgi`; the Procfile,
scripts/run.sh and the Docker image use it). Every value can still be overridden on the command
line or in GUNICORN_CMD_ARGS."""

import os

bind = os.environ.get("API_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = int(os.environ.get("WEB_THREADS", "1"))
# Errors gunicorn answers itself (414, 431, 400 before Django) as problem+json.
worker_class = (
    "clinic.gunicorn_worker.ProblemThreadWorker"
    if threads > 1
    else "clinic.gunicorn_worker.ProblemSyncWorker"
)

# Request limits: a request line (method, path, query string) of at most 4 KiB, at most 50
# headers of at most 8 KiB each. Nothing of the API needs more; beyond it is a 414 or a 431.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190

# A request that takes longer is killed (the worker is restarted), a client idle between
# keep-alive requests is dropped.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5

# The access log names the path only (%(U)s), never the query string (%(q)s, or %(r)s, the
# whole request line): a query can carry a patient's name or phone (`?search=`). No referer
# either, which is another page's full URL. The request id (X-Request-ID) ties a line to the
# application's own log and the audit trail.
accesslog = "-"
access_log_format = (
    '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s" %({x-request-id}o)s'
)
errorlog = "-"

# No control socket (gunicornc): unused, and two servers on one machine would share its path.
control_socket_disable = True

# gunicorn's own two loggers go through the same patient-data filter as the application's
# (clinic.logs): its error log can quote an exception, its access log a path.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_patient_data": {"()": "clinic.logs.RedactPatientData"}},
    "formatters": {
        "generic": {
            "format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s",
            "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
        },
        "access": {"format": "%(message)s"},
    },
    "handlers": {
        "error_console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "generic",
            "filters": ["redact_patient_data"],
        },
        "access_console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "access",
            "filters": ["redact_patient_data"],
        },
    },
    # The application's LOGGING (clinic/settings.py) sets the root logger when Django starts.
    "root": {"level": "INFO", "handlers": []},
    "loggers": {
        "gunicorn.error": {"handlers": ["error_console"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["access_console"], "level": "INFO", "propagate": False},
    },
}
