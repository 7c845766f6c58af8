"""Hookline settings: every value comes from the environment, with a default that works on a laptop.

Every variable read here is documented in docs/configuration.md.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

from config.database import database_settings
from config.env import (
    env_bool,
    env_float,
    env_header_name,
    env_int,
    env_list,
    env_networks,
    env_origins,
    env_redis_url,
    env_seconds_list,
    env_signing_secret,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("HOOKLINE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _local_secret_key() -> str:
    """A per-installation key kept under var/, so a laptop needs no configuration."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("SECRET_KEY", "") or _local_secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "subscriptions",
    "webhooks",
    "deliveries",
    "inbox",
    "operations",
    "dashboard",
    "benchmarks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.nul_guard.RejectNulMiddleware",
    "config.body_limit.BodyLimitMiddleware",
    "config.api_query.RefuseUnknownQueryParametersMiddleware",
    "config.cookies.CookiePathMiddleware",
    # Outside the session, CSRF, clickjacking and CSP middleware, whose headers it adjusts.
    "dashboard.embedding.PortalEmbeddingMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.security.ContentSecurityPolicyMiddleware",
    "config.login_throttle.LoginThrottleMiddleware",
]

# --- HTTPS and cookies ----------------------------------------------------------------------------

# Behind TLS in production (SECURE_HTTPS=true): redirect to https, secure cookies, HSTS. Off by
# default so that a laptop's http://127.0.0.1 works.
SECURE_HTTPS = env_bool("SECURE_HTTPS", False)
SECURE_SSL_REDIRECT = SECURE_HTTPS
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
SECURE_HSTS_SECONDS = 31_536_000 if SECURE_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HTTPS
SECURE_HSTS_PRELOAD = SECURE_HTTPS
# Probes and Prometheus reach the web server directly, over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Origins whose pages may show portal-link sessions in an <iframe> (CSP frame-ancestors); every
# other page, and the portal when this is empty, refuses to be framed (docs/embedding.md).
WEBHOOKS_PORTAL_FRAME_ANCESTORS = env_origins("WEBHOOKS_PORTAL_FRAME_ANCESTORS")
SESSION_COOKIE_HTTPONLY = True

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/dashboard/"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            "builtins": [
                "django.templatetags.static",
                "django.contrib.humanize.templatetags.humanize",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'hookline.sqlite3'}")
# The same database through a PgBouncer in transaction mode. When set, Hookline connects through
# it, but for `manage.py migrate`, which connects to DATABASE_URL (config.database, manage.py).
DATABASE_POOL_URL = env_str("DATABASE_POOL_URL", "")
DATABASES = {
    "default": database_settings(
        url=DATABASE_URL,
        pool_url=DATABASE_POOL_URL,
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 600),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# `json`: one JSON object a line, with each record's `extra=` fields (see config.log_format).
LOG_FORMAT = env_str("LOG_FORMAT", "text").strip().lower()
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}")
if LOG_FORMAT == "json":
    # Python's warnings as log records too: printed as they are, they would break the format.
    logging.captureWarnings(True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.log_format.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "celery": {"level": "WARNING"},
        "celery.apps.worker": {"level": "INFO"},  # says "ready."
    },
}

# --- Celery -------------------------------------------------------------------------------------

_BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The embedded broker: messages are files under var/, so a laptop needs no server.
    _BROKER_DIR.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR),
        "data_folder_out": str(_BROKER_DIR),
        "control_folder": str(_BROKER_DIR / "control"),
        "polling_interval": 0.2,
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Far above any task's run time, so Redis never hands a running task to a second worker.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, "socket_connect_timeout": 2}
else:
    # RabbitMQ (amqp://) has no visibility timeout: a message goes back to its queue when the
    # connection of the worker holding it closes. Its consumer timeout (30 min by default) must
    # stay above CELERY_TASK_TIME_LIMIT, or it closes the channel of a task still running.
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
# Where the wake-up flags live (deliveries.wake_flags), and the default cache's server: empty
# means the broker when it is Redis, else the database holds the flags.
REDIS_URL = env_redis_url("REDIS_URL")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Celery's Django fixup would close the database connection around every task (a new PostgreSQL
# connection per batch); config/celery.py closes only broken or expired ones instead.
CELERY_DB_REUSE_MAX = 10**9
# When the broker is down, fail fast: the delivery rows exist and the sweeper wakes workers later.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2}
CELERY_BROKER_CONNECTION_TIMEOUT = 2

# --- Cache (API rate limits) ------------------------------------------------------------------


def _next_redis_database(url: str) -> str:
    """The same Redis server, a neighbouring database: a cache flush must not empty the queue, nor
    drop the wake-up flags."""
    parts = urlsplit(url)
    number = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{number + 1 if number < 15 else number - 1}"))


# Redis when Hookline has one (REDIS_URL, or a Redis broker), so every web process shares one
# rate-limit count.
_SHARED_REDIS = REDIS_URL or (CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "")
CACHE_URL = env_str(
    "CACHE_URL", _next_redis_database(_SHARED_REDIS) if _SHARED_REDIS else "locmem://"
)
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL.startswith(("redis://", "rediss://"))
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Throttles -----------------------------------------------------------------------------------

# The header in which the reverse proxy in front of Hookline passes the client's address (its
# right-most entry counts); empty: REMOTE_ADDR. Sign-in and API-key throttles count per address.
WEBHOOKS_TRUSTED_PROXY_HEADER = env_header_name("WEBHOOKS_TRUSTED_PROXY_HEADER")

# --- REST API -----------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["subscriptions.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["subscriptions.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env_str("WEBHOOKS_API_RATE_LIMIT", "50/s")},
    "DEFAULT_RENDERER_CLASSES": ["config.api_renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.api_parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Hookline API",
    "DESCRIPTION": "Manage endpoints, emit events and inspect and replay deliveries.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],  # the schema and docs are public; a stale key must not break them
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api_schema.add_error_responses",
        "config.api_schema.require_response_fields",
        "config.api_schema.ids_start_at_one",
        "config.api_schema.strings_without_nul",
    ],
    "ENUM_NAME_OVERRIDES": {
        "DeliveryStatusEnum": "deliveries.models.Delivery.Status",
        "ReplayJobStatusEnum": "deliveries.models.ReplayJob.Status",
        "EventBatchItemStatusEnum": "webhooks.batches.ItemStatus",
        "EventBatchRejectionCodeEnum": "webhooks.batches.RejectionCode",
    },
}

# --- Email (operational notifications) ----------------------------------------------------------

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "hookline@localhost")
# Operators told about disabled endpoints, dead letters piling up and overdue deliveries, as
# "Name <address>" pairs separated by commas.
WEBHOOKS_OPERATOR_EMAILS = env_list("WEBHOOKS_OPERATOR_EMAILS", "")

# --- Hookline -----------------------------------------------------------------------------------

# Seconds between attempts; one more attempt than there are delays (Svix's schedule by default).
WEBHOOKS_RETRY_SCHEDULE = env_seconds_list(
    "WEBHOOKS_RETRY_SCHEDULE", "5,300,1800,7200,18000,36000,36000"
)
WEBHOOKS_RETRY_CLIENT_ERRORS = env_bool("WEBHOOKS_RETRY_CLIENT_ERRORS", True)
WEBHOOKS_TIMEOUT = env_float("WEBHOOKS_TIMEOUT", 15.0, minimum=0.1)
WEBHOOKS_MAX_PAYLOAD_BYTES = env_int("WEBHOOKS_MAX_PAYLOAD_BYTES", 256 * 1024, minimum=1)
# The largest request body POST /api/v1/events/batch/ accepts (up to 500 events). Parsing JSON
# takes up to about 25 times its size in memory (a body of nothing but `[]`), so this bounds it.
WEBHOOKS_BATCH_MAX_BYTES = env_int("WEBHOOKS_BATCH_MAX_BYTES", 5 * 1024 * 1024, minimum=1)
WEBHOOKS_REQUIRE_HTTPS = env_bool("WEBHOOKS_REQUIRE_HTTPS", True)
WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST = env_networks("WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST", "")
WEBHOOKS_SWEEP_INTERVAL = env_float("WEBHOOKS_SWEEP_INTERVAL", 5.0, minimum=0.1)
WEBHOOKS_DISABLE_AFTER_DAYS = env_float("WEBHOOKS_DISABLE_AFTER_DAYS", 5.0, minimum=0.0)
# Deliveries tunnel through it with CONNECT to the address Hookline checked (deliveries.transport).
WEBHOOKS_EGRESS_PROXY = env_url("WEBHOOKS_EGRESS_PROXY", require_https=False)
if WEBHOOKS_EGRESS_PROXY.startswith("https:"):
    raise ImproperlyConfigured("WEBHOOKS_EGRESS_PROXY must be an http:// proxy URL")
# Endpoints a tenant may have (subscriptions.services.endpoint_add); 0 for no limit.
WEBHOOKS_MAX_ENDPOINTS_PER_TENANT = env_int("WEBHOOKS_MAX_ENDPOINTS_PER_TENANT", 100, minimum=0)
WEBHOOKS_SECRET_ROTATION_OVERLAP = env_int("WEBHOOKS_SECRET_ROTATION_OVERLAP", 24 * 3600)
# Fernet keys for endpoint secrets at rest, newest first; derived from SECRET_KEY when unset.
WEBHOOKS_ENCRYPTION_KEYS = env_list("WEBHOOKS_ENCRYPTION_KEYS", "")
WEBHOOKS_BATCH_SIZE = env_int("WEBHOOKS_BATCH_SIZE", 200, minimum=1)
# Under contention (a claim came back full), share each batch out between tenants (by
# Tenant.delivery_weight) and their endpoints, instead of serving due deliveries in due order
# across all tenants (docs/decisions/0015-fair-claims.md).
WEBHOOKS_FAIR_CLAIMS = env_bool("WEBHOOKS_FAIR_CLAIMS", True)
# A new endpoint, or one whose URL changed, must echo a signed challenge before it receives
# anything else (Tenant.verify_endpoints overrides this per tenant).
WEBHOOKS_VERIFY_ENDPOINTS = env_bool("WEBHOOKS_VERIFY_ENDPOINTS", False)
# A claim's lease, renewed while its batch is in flight: a dead worker's deliveries go to
# another worker this long after its last renewal. An attempt starts only if the lease outlasts
# it, so the lease must exceed the timeout, with room for a renewal (deliveries.batch).
WEBHOOKS_LEASE_SECONDS = env_float("WEBHOOKS_LEASE_SECONDS", WEBHOOKS_TIMEOUT + 5, minimum=1.0)
if WEBHOOKS_LEASE_SECONDS < WEBHOOKS_TIMEOUT + 2:
    raise ImproperlyConfigured(
        "WEBHOOKS_LEASE_SECONDS must be at least WEBHOOKS_TIMEOUT plus 2 seconds, so that an "
        "attempt ends within the lease it started under, and the lease can be renewed meanwhile."
    )
# The circuit breaker: after this many failed attempts in a row an endpoint is paused, then
# probed with one delivery after WEBHOOKS_CIRCUIT_COOLDOWN seconds (doubling per failed probe).
WEBHOOKS_CIRCUIT_FAILURES = env_int("WEBHOOKS_CIRCUIT_FAILURES", 5, minimum=1)
WEBHOOKS_CIRCUIT_COOLDOWN = env_float("WEBHOOKS_CIRCUIT_COOLDOWN", 30.0, minimum=0.1)
# Attempts slower than this move an endpoint to each worker's side threads.
WEBHOOKS_SLOW_ATTEMPT_SECONDS = env_float("WEBHOOKS_SLOW_ATTEMPT_SECONDS", 0.25, minimum=0.01)
WEBHOOKS_SLOW_LANE_THREADS = env_int("WEBHOOKS_SLOW_LANE_THREADS", 8, minimum=1)
WEBHOOKS_RESPONSE_BODY_LIMIT = env_int("WEBHOOKS_RESPONSE_BODY_LIMIT", 64 * 1024, minimum=0)
# A test send goes through the workers; the web request waits this long for its attempt before
# answering 202 with the delivery to follow. Each tenant has at most so many test sends pending.
WEBHOOKS_TEST_WAIT_SECONDS = env_float("WEBHOOKS_TEST_WAIT_SECONDS", 2.5, minimum=0.0)
WEBHOOKS_TEST_SENDS_PER_TENANT = env_int("WEBHOOKS_TEST_SENDS_PER_TENANT", 3, minimum=1)

# --- Retention (docs/operations.md: "Retention") ------------------------------------------------

# Succeeded deliveries, events left without deliveries, and the captured headers and bodies of
# attempts go after this many days (operations.retention); 0 keeps everything.
WEBHOOKS_RETENTION_DAYS = env_int("WEBHOOKS_RETENTION_DAYS", 30, minimum=0)
# Rows per batch of a purge; each batch is one short transaction.
WEBHOOKS_RETENTION_BATCH_SIZE = env_int("WEBHOOKS_RETENTION_BATCH_SIZE", 1000, minimum=1)
# Seconds between purges (Celery beat).
WEBHOOKS_RETENTION_INTERVAL = env_float("WEBHOOKS_RETENTION_INTERVAL", 3600.0, minimum=1.0)

# --- Operational notifications (docs/operations.md: "Operational notifications") -----------------

# An endpoint with more dead letters than this tells its tenant and the operators, once until it
# is back to this many or fewer; 0 turns the alert off.
WEBHOOKS_DEAD_LETTER_ALERT_THRESHOLD = env_int("WEBHOOKS_DEAD_LETTER_ALERT_THRESHOLD", 100)
# Deliveries due this many seconds ago and still not attempted mean the workers are behind or
# down; 0 turns the alert off.
WEBHOOKS_OVERDUE_ALERT_SECONDS = env_float("WEBHOOKS_OVERDUE_ALERT_SECONDS", 60.0)
# Where operational events (operations.*) are POSTed, signed with the secret like any delivery.
# Checked here; the network policy (WEBHOOKS_PRIVATE_NETWORK_ALLOWLIST) is checked at each send.
WEBHOOKS_OPERATIONAL_WEBHOOK_URL = env_url(
    "WEBHOOKS_OPERATIONAL_WEBHOOK_URL", require_https=WEBHOOKS_REQUIRE_HTTPS
)
WEBHOOKS_OPERATIONAL_WEBHOOK_SECRET = env_signing_secret("WEBHOOKS_OPERATIONAL_WEBHOOK_SECRET")
if WEBHOOKS_OPERATIONAL_WEBHOOK_URL and not WEBHOOKS_OPERATIONAL_WEBHOOK_SECRET:
    raise ImproperlyConfigured(
        "WEBHOOKS_OPERATIONAL_WEBHOOK_URL is set without WEBHOOKS_OPERATIONAL_WEBHOOK_SECRET: "
        "operational webhooks are always signed (docs/operations.md says how to generate a secret)."
    )

# --- Monitoring ---------------------------------------------------------------------------------

# When set, GET /metrics asks for `Authorization: Bearer <token>`.
WEBHOOKS_METRICS_TOKEN = env_str("WEBHOOKS_METRICS_TOKEN", "")
# Shared by the web and worker processes of one machine, so that /metrics adds up the counters of
# every process; prometheus-client reads the variable itself, this copy tells /metrics to merge.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR", "")
if PROMETHEUS_MULTIPROC_DIR:
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)

# --- Tracing (docs/tracing.md) ------------------------------------------------------------------

# OpenTelemetry's own variables: traces go to this OTLP/HTTP collector when it is set, and nothing
# of OpenTelemetry is loaded when it is not (config.tracing). The SDK reads the rest of its
# variables (OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, OTEL_EXPORTER_OTLP_HEADERS, …) itself.
OTEL_EXPORTER_OTLP_ENDPOINT = env_url("OTEL_EXPORTER_OTLP_ENDPOINT", require_https=False)
OTEL_SDK_DISABLED = env_bool("OTEL_SDK_DISABLED", False)
TRACING = bool(OTEL_EXPORTER_OTLP_ENDPOINT) and not OTEL_SDK_DISABLED
_OTLP_PROTOCOL = env_str("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf").strip()
if TRACING and _OTLP_PROTOCOL != "http/protobuf":
    raise ImproperlyConfigured(
        f"OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf, not {_OTLP_PROTOCOL!r}: Hookline "
        "exports traces over OTLP/HTTP (a collector listens for it on port 4318)."
    )
# Each attempt sends its span's W3C `traceparent` header, so a receiver can continue the trace.
WEBHOOKS_TRACEPARENT = env_bool("WEBHOOKS_TRACEPARENT", False)
if WEBHOOKS_TRACEPARENT and not TRACING:
    raise ImproperlyConfigured(
        "WEBHOOKS_TRACEPARENT=true sends each attempt's span to receivers, so it needs tracing "
        "on: set OTEL_EXPORTER_OTLP_ENDPOINT too."
    )
