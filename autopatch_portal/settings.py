"""Settings, all read from the environment; with nothing set, the embedded default runs.

Embedded default: SQLite under var/ and Celery on kombu's filesystem transport, so the
demo needs no server. Production: DATABASE_URL (PostgreSQL) and REDIS_URL, same code.
"""

from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONE, SELF

from .env import ImproperEnvironment, envbool, envguid, envint, envlist, envsecret, envstr, generated_secret

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("AUTOPATCH_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = envbool("DEBUG", False)
SECRET_KEY = envsecret("SECRET_KEY") or generated_secret(VAR_DIR / "secret_key")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "csp",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "autopatch_portal.tenant",
    "accounts",
    "devices",
]

MIDDLEWARE = [
    "autopatch_portal.health.HealthCheckMiddleware",  # first: no host check, HTTPS redirect or session
    "autopatch_portal.proxy.ProxiedClientMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "autopatch_portal.urls"
WSGI_APPLICATION = "autopatch_portal.wsgi.application"

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
                "accounts.context_processors.portal_role",
            ],
        },
    },
]

# Database: DATABASE_URL, else a SQLite file under var/.
DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'autopatch.sqlite3'}",
        conn_max_age=envint("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and worker write at once: WAL lets readers go on, IMMEDIATE plus a busy
    # timeout makes writers queue instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not memory, so that a Celery worker started by the tests sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    # The name order's index and the tenant copy's key INCLUDE columns for PostgreSQL's index-only scans
    # (devices.models); SQLite builds them on their key columns, which is all the embedded default needs: no
    # warning on every command.
    SILENCED_SYSTEM_CHECKS = ["models.W039", "models.W040"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/devices/ready/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Sign-in: Entra ID through MSAL (the tenant connector's app registration), or local accounts.
AUTOPATCH_AUTH = envstr("AUTOPATCH_AUTH", "local")
if AUTOPATCH_AUTH not in ("local", "entra"):
    raise ImproperEnvironment(f"AUTOPATCH_AUTH must be local or entra, not {AUTOPATCH_AUTH!r}")
# Object IDs of "Modern Workplace Roles - Service Administrator" and "... - Service Reader".
AUTOPATCH_ADMIN_GROUP_ID = envstr("AUTOPATCH_ADMIN_GROUP_ID")
AUTOPATCH_READER_GROUP_ID = envstr("AUTOPATCH_READER_GROUP_ID")
AUTOPATCH_REDIRECT_URI = envstr(
    "AUTOPATCH_REDIRECT_URI"
)  # else built from the request (…/accounts/entra/callback/)
AUTOPATCH_LOGIN_MAX_FAILURES = envint("AUTOPATCH_LOGIN_MAX_FAILURES", 5)  # per account name
AUTOPATCH_LOGIN_MAX_FAILURES_PER_IP = envint("AUTOPATCH_LOGIN_MAX_FAILURES_PER_IP", 20)
AUTOPATCH_LOGIN_LOCKOUT_MINUTES = envint("AUTOPATCH_LOGIN_LOCKOUT_MINUTES", 15)

# Hardening.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = envint("SESSION_COOKIE_AGE", 8 * 3600)  # a working day, then sign in again
SESSION_COOKIE_SAMESITE = (
    "Lax"  # Lax, not Strict: a link to the portal from mail or chat finds the user signed in
)
CSRF_COOKIE_HTTPONLY = True  # pages put the token in forms and in hx-headers; scripts never read the cookie
CSRF_FAILURE_VIEW = "accounts.views.signin.csrf_failure"
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = envbool("SECURE_COOKIES", not DEBUG)
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", False)
# Behind the TLS proxy (Caddy in docker-compose.yml): trust its X-Forwarded-Proto and X-Forwarded-For.
BEHIND_TLS_PROXY = envbool("BEHIND_TLS_PROXY", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
# A year of HSTS is the preload list's bar; SECURE_HSTS_PRELOAD=False keeps the directive off.
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", SECURE_HSTS_SECONDS >= 31536000)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# No inline script or style, no eval, no framing; forms post here, or (sign-out) end at Entra ID.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF, "https://login.microsoftonline.com"],
    }
}

# Celery: Redis when REDIS_URL is set, else kombu's filesystem transport under var/.
REDIS_URL = envstr("REDIS_URL")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
else:
    _queue = VAR_DIR / "celery"
    for _folder in ("queue", "processed", "control"):
        (_queue / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue / "queue"),
        "data_folder_out": str(_queue / "queue"),
        "processed_folder": str(_queue / "processed"),
        "control_folder": str(_queue / "control"),
        "store_processed": False,
    }
# One cache every web worker and Celery process shares (the simulated tenant's sign-in codes, the sign-in
# flows kept for Entra's answer): Redis with it, else files under var/.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "autopatch",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
CELERY_TASK_IGNORE_RESULT = True  # a discovery run is a database row, not a Celery result
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    # The hourly discovery of the registration group, the same task the button starts.
    "hourly-discovery": {
        "task": "devices.tasks.discover",
        "schedule": crontab(minute=envint("AUTOPATCH_DISCOVERY_MINUTE", 0)),
        "kwargs": {"trigger": "schedule"},
    },
}

# The tenant: real Graph credentials, or a simulated tenant file, or the bundled demo tenant.
# A GUID, not a domain name: ID tokens name the tenant by its ID (iss, tid), and the sign-in checks them against it.
AUTOPATCH_TENANT_ID = envguid(
    "AUTOPATCH_TENANT_ID",
    "ID tokens name the tenant by its ID, never by a domain name: "
    "copy the Tenant ID from the Entra admin center's Overview page.",
)
AUTOPATCH_CLIENT_ID = envstr("AUTOPATCH_CLIENT_ID")
AUTOPATCH_CLIENT_SECRET = envsecret("AUTOPATCH_CLIENT_SECRET")
AUTOPATCH_TENANT_FILE = envstr("AUTOPATCH_TENANT_FILE")
AUTOPATCH_REGISTRATION_GROUP_ID = envstr("AUTOPATCH_REGISTRATION_GROUP_ID")
AUTOPATCH_REGISTRATION_GROUP_NAME = "Windows Autopatch Device Registration"
AUTOPATCH_GRAPH_TIMEOUT = envint("AUTOPATCH_GRAPH_TIMEOUT", 30)
AUTOPATCH_ENTRA_TIMEOUT = envint(
    "AUTOPATCH_ENTRA_TIMEOUT", 10
)  # seconds MSAL waits for each answer of Entra ID
AUTOPATCH_GRAPH_MAX_RETRIES = envint("AUTOPATCH_GRAPH_MAX_RETRIES", 5)
AUTOPATCH_GRAPH_BACKOFF_MS = envint(
    "AUTOPATCH_GRAPH_BACKOFF_MS", 1000
)  # first retry's wait; doubles, capped at 30 s
AUTOPATCH_GRAPH_PAGE_SIZE = envint("AUTOPATCH_GRAPH_PAGE_SIZE", 999)  # Graph's most for directory objects
AUTOPATCH_INTUNE_PAGE_SIZE = envint(
    "AUTOPATCH_INTUNE_PAGE_SIZE", 1000, minimum=1, maximum=1000
)  # Intune's most
# The simulated tenant's answer time per request, so that concurrent reads can be measured; 0 answers at once.
AUTOPATCH_SIMULATED_LATENCY_MS = envint("AUTOPATCH_SIMULATED_LATENCY_MS", 0, minimum=0)
# A discovery lease is renewed as the run goes; a crashed worker's lease lapses after this.
AUTOPATCH_DISCOVERY_LEASE_SECONDS = envint("AUTOPATCH_DISCOVERY_LEASE_SECONDS", 300)
# Intune's managed devices have no delta query: runs read those synced since the last read (less a margin,
# as a device's lastSyncDateTime can be written after the moment it names), and all of them this often so
# that deleted devices are seen.
AUTOPATCH_INTUNE_FULL_READ_HOURS = envint("AUTOPATCH_INTUNE_FULL_READ_HOURS", 24)
AUTOPATCH_INTUNE_SYNC_MARGIN_MINUTES = envint("AUTOPATCH_INTUNE_SYNC_MARGIN_MINUTES", 60)
# A run that adds at least this many devices to an empty device table (a first import) builds the table's
# secondary indexes once after its writes instead of keeping them up row by row (devices.discovery.indexes).
AUTOPATCH_DEFER_INDEXES_FROM = envint("AUTOPATCH_DEFER_INDEXES_FROM", 5000, minimum=1)

# The REST API (/api/v1/, README "API"): JSON only, API keys, Entra access tokens (AUTOPATCH_AUTH=entra) or the
# portal's session; every error a JSON body (accounts.api.errors).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.BearerAuthentication",
        "accounts.api.authentication.PortalSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.api.permissions.NoAccess"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["accounts.api.errors.LimitedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "accounts.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Autopatch Portal API",
    "DESCRIPTION": "The device blade of Autopatch Portal for scripts, provisioning services and device reporters. "
    "Send `Authorization: Bearer <key or Entra access token>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
}
# The largest request body the API takes (a list of 1,000 readiness reports is about 1 MB).
AUTOPATCH_API_MAX_BODY_BYTES = envint("AUTOPATCH_API_MAX_BODY_BYTES", 4 * 1024 * 1024, minimum=1024)
# App roles (the `roles` claim of an Entra access token for the portal's app) and what they grant in the API.
AUTOPATCH_API_ADMIN_ROLE = envstr("AUTOPATCH_API_ADMIN_ROLE", "Autopatch.ServiceAdministrator")
AUTOPATCH_API_READER_ROLE = envstr("AUTOPATCH_API_READER_ROLE", "Autopatch.ServiceReader")
AUTOPATCH_API_READINESS_ROLE = envstr("AUTOPATCH_API_READINESS_ROLE", "Autopatch.ReadinessReporter")
# How long the tenant's published signing keys (JWKS) are kept before they are fetched again.
AUTOPATCH_API_JWKS_SECONDS = envint("AUTOPATCH_API_JWKS_SECONDS", 3600, minimum=60)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    # MSAL and urllib3 log request details (codes, tokens) at DEBUG: never below WARNING.
    "loggers": {"msal": {"level": "WARNING"}, "urllib3": {"level": "WARNING"}},
}
