"""CohortSync settings.

Every value comes from the environment (or an optional `.env` file at the project root),
read once through django-environ. README.md lists every variable.
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Values such as secrets may start with "$"; never resolve them as references.
env.interpolate = False
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# Development gets clearly marked, insecure defaults; production must configure both.
_DEV_SECRET_KEY = "insecure-development-only-secret-key-do-not-use-in-production"
# A valid Fernet key (32 url-safe base64 bytes) that is public: development only.
_DEV_FIELD_ENCRYPTION_KEY = "ZGV2ZWxvcG1lbnQtb25seS1rZXktbm90LXNlY3JldCE="

SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
FIELD_ENCRYPTION_KEYS: list[str] = env.list(
    "FIELD_ENCRYPTION_KEYS", default=[_DEV_FIELD_ENCRYPTION_KEY] if DEBUG else []
)
if not DEBUG:
    missing = [
        name
        for name, value in (("SECRET_KEY", SECRET_KEY), ("FIELD_ENCRYPTION_KEYS", FIELD_ENCRYPTION_KEYS))
        if not value
    ]
    if missing:
        raise ImproperlyConfigured(
            f"CohortSync refuses to start in production without {' and '.join(missing)}. "
            "Set them in the environment or in .env (see README.md, 'Configuration'), "
            "or set DEBUG=true for a local development instance."
        )

ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "cohortsync_site.apps.CohortSyncAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "cohorts",
    "destinations",
    "syncs",
    "alerts",
    "sources",
    "api",
    "health",
    "roles",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "cohortsync_site.urls"
WSGI_APPLICATION = "cohortsync_site.wsgi.application"

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
        },
    },
]

# --- Database -------------------------------------------------------------------------
# SQLite in var/ is the embedded, zero-setup default; PostgreSQL via DATABASE_URL=postgres://...
VAR_DIR = Path(env.str("COHORTSYNC_VAR_DIR", default=str(BASE_DIR / "var")))
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'cohortsync.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # WAL lets the web server read while the task cluster writes; IMMEDIATE takes the write
    # lock at BEGIN so two writers queue up (busy timeout) instead of failing mid-transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DATABASES["default"].setdefault("CONN_MAX_AGE", 0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (shared by web and workers: destination tokens live here) --------------------
REDIS_URL = env.str("REDIS_URL", default="")
# The task queue's name: its Redis keys and the salt tasks are signed with, and the prefix of
# the cache's keys in Redis. The same on every web and worker process of one installation;
# installations sharing a Redis server use different names.
TASK_QUEUE_NAME = env.str("TASK_QUEUE_NAME", default="cohortsync")
if env.str("CACHE_URL", default=""):
    CACHES = {"default": env.cache_url("CACHE_URL")}
elif REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": TASK_QUEUE_NAME}}
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "cohortsync_cache"}
    }

# --- Task queue (django-q2) -------------------------------------------------------------
# retry must exceed timeout (plus queue wait) or a long task is delivered twice while running.
TASK_TIMEOUT_SECONDS = env.int("TASK_TIMEOUT_SECONDS", default=3600)
Q_CLUSTER: dict = {
    "name": TASK_QUEUE_NAME,
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": TASK_TIMEOUT_SECONDS,
    "retry": TASK_TIMEOUT_SECONDS + 600,
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 500,
    # Tasks a cluster takes from the broker ahead of its free workers (its pusher holds one
    # more). With several clusters a deeper queue lets one host hoard runs that wait behind its
    # busy workers while another host idles, and on Redis what a killed cluster held is lost.
    "queue_limit": 1,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- CohortSync -------------------------------------------------------------------------
# Non-official API hosts (sandbox emulators, proxies) that destinations may call: host[:port].
COHORTSYNC_ALLOWED_API_HOSTS: list[str] = env.list("COHORTSYNC_ALLOWED_API_HOSTS", default=[])
COHORTSYNC_RUN_RETENTION_DAYS = env.int("COHORTSYNC_RUN_RETENTION_DAYS", default=30)
COHORTSYNC_REMOVAL_GUARD_RATIO = env.float("COHORTSYNC_REMOVAL_GUARD_RATIO", default=0.5)
COHORTSYNC_SANDBOX_HOST = env.str("COHORTSYNC_SANDBOX_HOST", default="127.0.0.1")
COHORTSYNC_SANDBOX_PORT = env.int("COHORTSYNC_SANDBOX_PORT", default=8765)
COHORTSYNC_HTTP_TIMEOUT_SECONDS = env.float("COHORTSYNC_HTTP_TIMEOUT_SECONDS", default=60.0)
# Where each destination account's API budget lives (destinations.budget): empty for Redis
# when REDIS_URL is set and the database otherwise; or database, redis, memory (one process).
COHORTSYNC_API_BUDGET_STORE = env.str("COHORTSYNC_API_BUDGET_STORE", default="")
if COHORTSYNC_API_BUDGET_STORE not in ("", "database", "redis", "memory"):
    raise ImproperlyConfigured(
        f"COHORTSYNC_API_BUDGET_STORE must be database, redis, memory or empty, not {COHORTSYNC_API_BUDGET_STORE!r}."
    )
if COHORTSYNC_API_BUDGET_STORE == "redis" and not REDIS_URL:
    raise ImproperlyConfigured("COHORTSYNC_API_BUDGET_STORE=redis needs REDIS_URL.")
# Destination calls a person waits for (the sync form's field check, Test connection): one
# attempt each, all of them within this many seconds.
COHORTSYNC_INTERACTIVE_TIMEOUT_SECONDS = env.float("COHORTSYNC_INTERACTIVE_TIMEOUT_SECONDS", default=10.0)
# A running run with no heartbeat for this long is considered dead (worker killed).
COHORTSYNC_STALE_RUN_MINUTES = env.float("COHORTSYNC_STALE_RUN_MINUTES", default=10)
# Users skipped for a missing/invalid identity are all counted; this many get a per-user row.
COHORTSYNC_SKIP_ROWS_PER_RUN = env.int("COHORTSYNC_SKIP_ROWS_PER_RUN", default=1000)
# How long to poll one SFMC asynchronous upsert before reporting its rows as retriable.
COHORTSYNC_SFMC_ASYNC_WAIT_SECONDS = env.float("COHORTSYNC_SFMC_ASYNC_WAIT_SECONDS", default=900.0)
# How long a scheduled sync waits for a running profile import before planning without it.
COHORTSYNC_IMPORT_WAIT_SECONDS = env.float("COHORTSYNC_IMPORT_WAIT_SECONDS", default=600.0)
# The largest body POST /api/v1/profiles accepts (10,000 profiles of about 3 KB).
COHORTSYNC_API_MAX_BODY_BYTES = env.int("COHORTSYNC_API_MAX_BODY_BYTES", default=32 * 1024 * 1024)
# seed_demo's stand-in for the customer's application database (SQLite).
COHORTSYNC_DEMO_APP_DB = Path(env.str("COHORTSYNC_DEMO_APP_DB", default=str(VAR_DIR / "demo-app.sqlite3")))

# --- Alerts -------------------------------------------------------------------------------
# Absolute address of this instance, for links in alerts (the run's admin page).
COHORTSYNC_BASE_URL: str = env.str("COHORTSYNC_BASE_URL", default="").rstrip("/")
# Hosts (host or host:port) alert webhooks may reach over http as well as https.
COHORTSYNC_ALLOWED_ALERT_HOSTS: list[str] = env.list("COHORTSYNC_ALLOWED_ALERT_HOSTS", default=[])
# Connect and read timeout of one webhook request or SMTP exchange.
COHORTSYNC_ALERT_TIMEOUT_SECONDS = env.float("COHORTSYNC_ALERT_TIMEOUT_SECONDS", default=5.0)
# Email: EMAIL_URL such as smtp+tls://user:password@smtp.example.com:587 (django-environ's
# email_url). Unset: the console backend in DEBUG; otherwise email alerts fail, saying so.
EMAIL_URL = env.str("EMAIL_URL", default="")
COHORTSYNC_EMAIL_CONFIGURED = bool(EMAIL_URL) or DEBUG
if EMAIL_URL:
    vars().update(env.email_url("EMAIL_URL"))
elif DEBUG:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="CohortSync <cohortsync@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_TIMEOUT = COHORTSYNC_ALERT_TIMEOUT_SECONDS

# --- Auth, i18n, static -----------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
LOGIN_URL = "admin:login"

# Large admin uploads (profile files) are streamed to disk, never held whole in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_000

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)

# --- Behind an https reverse proxy (docs/deployment.md) -----------------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Load balancers and supervisors probe /healthz over plain http on the web port.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# The header the proxy sets to "https" for https requests, e.g. X-Forwarded-Proto. Only set it
# when the proxy always sets or strips that header: a client could otherwise claim https.
_PROXY_SSL_HEADER = env.str("SECURE_PROXY_SSL_HEADER", default="")
if _PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _PROXY_SSL_HEADER.upper().replace("-", "_"), "https")

# /healthz answers 503 when no task cluster has shown a sign of life for this long.
COHORTSYNC_HEALTH_MAX_HEARTBEAT_AGE_SECONDS = env.int("COHORTSYNC_HEALTH_MAX_HEARTBEAT_AGE_SECONDS", default=180)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # urllib3 logs full URLs at DEBUG; keep it quiet so nothing sensitive reaches the logs.
    "loggers": {"urllib3": {"level": "WARNING"}},
}
