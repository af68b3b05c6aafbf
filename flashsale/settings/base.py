"""Settings shared by every environment; everything configurable comes from the env."""

from pathlib import Path

import dj_database_url

from .env import env_bool, env_int, env_list, env_rate, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = env_str("SECRET_KEY")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "flashsale",
    "products",
    "orders",
    "dashboard",
    "shoppers",
    "waiting_room",
]

MIDDLEWARE = [
    "flashsale.request_id.request_id_middleware",  # first: every later log line carries the id
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "flashsale.trailing_slash.CommonMiddlewareWithoutApiRedirects",  # no 301 under /api/
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "flashsale.urls"
WSGI_APPLICATION = "flashsale.wsgi.application"

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


def database_from_url(url: str) -> dict:
    """One database alias; pooled when DB_POOL_MAX_SIZE > 0 (gunicorn.conf.py turns it on for
    gevent and gthread workers), else one persistent connection per process (sync workers,
    manage.py, tests)."""
    pool_max = env_int("DB_POOL_MAX_SIZE", 0)
    connect_timeout = env_int("DB_CONNECT_TIMEOUT", 5)
    config = dj_database_url.parse(
        url,
        conn_max_age=0 if pool_max else env_int("CONN_MAX_AGE", 600),
        # The health check is a `SELECT 1` before every request's first query (~8% of a worker
        # under purchases). The pool does without it: a connection that broke (a PostgreSQL
        # restart) fails the one request that used it (503 unavailable) and is discarded when
        # given back; tests/test_fault_restarts.py holds that recovery.
        conn_health_checks=env_bool("CONN_HEALTH_CHECKS", not pool_max),
    )
    options = config.setdefault("OPTIONS", {})
    options["connect_timeout"] = connect_timeout
    if pool_max:
        # Django's backend with a pool that waits out a burst but not an outage.
        config["ENGINE"] = "flashsale.postgres"
        options["pool"] = {
            "min_size": min(env_int("DB_POOL_MIN_SIZE", 2), pool_max),
            "max_size": pool_max,
            # One wait for a free connection; with nothing connected (the database down)
            # the request then answers 503 unavailable (without a pool, a refused connect
            # answered at once; a longer wait only slows the outage's answers)...
            "timeout": env_int("DB_POOL_TIMEOUT_MS", 500) / 1000,
            # ...while connections exist and are only busy (a burst), it waits on up to this.
            "queue_seconds": env_int("DB_POOL_QUEUE_SECONDS", 30),
            "max_idle": 60,
        }
    # LOCK_TIMEOUT_MS as the session default: no statement of its own in each locking
    # transaction (flashsale.db.locked_transaction). Every lock wait of the app's sessions
    # is bounded by it, migrations' included. Not for PgBouncer, which refuses startup options.
    if env_bool("DB_LOCK_TIMEOUT_AT_CONNECT", True):
        extra = f"-c lock_timeout={env_int('LOCK_TIMEOUT_MS', 3000)}ms"  # parsed by flashsale.db
        options["options"] = " ".join(filter(None, [options.get("options"), extra]))
    # Behind PgBouncer in transaction mode a named cursor may land on another server connection.
    config["DISABLE_SERVER_SIDE_CURSORS"] = env_bool("DISABLE_SERVER_SIDE_CURSORS", False)
    return config


def redis_cache(url: str) -> dict:
    # IGNORE_EXCEPTIONS: when Redis is down every cache call answers "nothing", the rate
    # limiter then fails open (RATELIMIT_FAIL_OPEN) and purchases go on; the database
    # still guards the stock. Short timeouts keep a dead Redis from slowing requests.
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": "flashsale",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "IGNORE_EXCEPTIONS": True,
            "SOCKET_CONNECT_TIMEOUT": 0.25,
            "SOCKET_TIMEOUT": 0.25,
        },
    }


DATABASE_URL = env_str("DATABASE_URL")
REDIS_URL = env_str("REDIS_URL")
DATABASES = {"default": database_from_url(DATABASE_URL)} if DATABASE_URL else {}
CACHES = {"default": redis_cache(REDIS_URL)} if REDIS_URL else {}
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    # Only `create_shoppers` writes this one, for throwaway load-test accounts.
    "flashsale.hashers.LoadTestPasswordHasher",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Serve straight from the apps' static folders, so a fresh clone needs no collectstatic.
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# API bodies are a few hundred bytes; refuse anything large before parsing it.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 256 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
# A body announced (or chunked) must arrive whole within this many seconds, else 408
# (flashsale.request_body; the request head's deadline is the worker's, flashsale.gunicorn_worker).
REQUEST_BODY_TIMEOUT = env_int("REQUEST_BODY_TIMEOUT", 10)

REST_FRAMEWORK = {
    # Token first: its `WWW-Authenticate` header makes DRF answer 401 (not 403) to
    # a request with no credentials.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "flashsale.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["flashsale.parsers.StrictJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "flashsale.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "flashsale.api_errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Flash sale API",
    "DESCRIPTION": (
        "Products, stock, purchases and orders of the flash-sale shop. Authenticate with "
        "`Authorization: Token <key>` (from `POST /api/auth/token/`) or a browser session. "
        "Every error is `{\"detail\", \"code\"}` (plus `errors` for validation). This schema and "
        "the error codes are generated from the same code as the answers (docs/api.md in the repository)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ProductStatusEnum": "products.models.SaleStatus.choices",
        "OrderStatusEnum": "orders.models.OrderStatus.choices",
        "HealthStatusEnum": ["ok", "degraded", "down"],
        "DependencyStatusEnum": ["up", "down"],
        "ErrorCodeEnum": "flashsale.error_codes.CHOICES",
    },
}

# The shop's own knobs.
# Rates are django-ratelimit strings ("5/m"); None disables that limit.
RATE_LIMIT_PURCHASE_USER = env_rate("RATE_LIMIT_PURCHASE_USER", "5/m")
RATE_LIMIT_PURCHASE_IP = env_rate("RATE_LIMIT_PURCHASE_IP", "60/m")
# Many shoppers share one address (an office, a mobile carrier) at a sale's start: the address
# limit is generous and the tight one is per username tried.
RATE_LIMIT_LOGIN_IP = env_rate("RATE_LIMIT_LOGIN_IP", "60/m")
RATE_LIMIT_LOGIN_USER = env_rate("RATE_LIMIT_LOGIN_USER", "5/m")
RATELIMIT_USE_CACHE = "default"
RATELIMIT_FAIL_OPEN = True  # Redis down: no limits, purchases go on (docs/decisions/redis-fails-open.md)

# How long a purchase waits for the product's row lock before answering 503 busy.
LOCK_TIMEOUT_MS = env_int("LOCK_TIMEOUT_MS", 3000)
# How long one worker may reuse a stock-endpoint read (readers only; buyers never see it).
# The contract allows the figure to be up to 1 s old; two layers may each add this much
# (the WSGI replay in products.stock_reads and the view's own copy), so it is capped at 500.
STOCK_READ_CACHE_MS = min(env_int("STOCK_READ_CACHE_MS", 500), 500)
# Known stock answers replayed before Django (products.stock_reads); off only to measure it.
STOCK_READ_REPLAY = env_bool("STOCK_READ_REPLAY", True)
# Plain token purchases answered before Django's request cycle (orders/fast_path.py); off only to measure it.
PURCHASE_FAST_PATH = env_bool("PURCHASE_FAST_PATH", True)
# The gevent worker answers a plain purchase of a product known sold out from gunicorn's
# parsed request, before the WSGI stack (flashsale/early_refusals.py); off only to measure it.
EARLY_REFUSALS = env_bool("EARLY_REFUSALS", True)
# How long a token's shopper may be answered from the shared cache without a query
# (flashsale.authentication); deleting the token or deactivating the user drops it at once.
TOKEN_CACHE_SECONDS = env_int("TOKEN_CACHE_SECONDS", 300)
# Each process also keeps the entries it read while it hears every invalidation (flashsale.local_tokens).
TOKEN_LOCAL_COPY = env_bool("TOKEN_LOCAL_COPY", True)
# Reverse proxies in front of the app; 0 = trust the socket address, ignore X-Forwarded-For.
TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0)

# JSON lines by default (LOG_FORMAT=plain for a person at a terminal); each carries the
# request id of the request that wrote it (flashsale.request_id).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "flashsale.request_id.RequestIdFilter"},
        "one_line": {"()": "flashsale.json_logs.OneLineErrors"},
        "quiet_sale_outcomes": {"()": "flashsale.json_logs.QuietSaleOutcomes"},
    },
    "formatters": {
        "json": {"()": "flashsale.json_logs.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain" if env_str("LOG_FORMAT", "json") == "plain" else "json",
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Sold out / limit / rate limited are the sale working, not warnings (see the filter).
        "django.request": {"filters": ["quiet_sale_outcomes"]},
        "django_redis": {"level": "WARNING"},
        # Redis down: one line per swallowed call, not a traceback (see docs, Failure modes).
        "django_redis.cache": {"level": "WARNING", "filters": ["one_line"]},
    },
}
