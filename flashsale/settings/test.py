"""Settings for pytest: real PostgreSQL and Redis (embedded unless the env names servers)."""

from .base import *  # noqa: F403
from .base import DATABASE_URL, REDIS_URL, database_from_url, redis_cache
from .embedded_defaults import embedded_urls

DATABASE_URL, REDIS_URL = embedded_urls(DATABASE_URL, REDIS_URL)
DATABASES = {"default": database_from_url(DATABASE_URL)}
# Tests open many threads, each with its own connection: close them after each request
# so a burst of threads does not exhaust the server's connection slots.
DATABASES["default"]["CONN_MAX_AGE"] = 0
CACHES = {"default": redis_cache(REDIS_URL)}
CACHES["default"]["KEY_PREFIX"] = "flashsale-test"

# Tests read the stock right after writing it; the cache's own tests turn it back on.
STOCK_READ_CACHE_MS = 0

SECRET_KEY = "test-only-not-secret"  # noqa: S105
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]  # noqa: F405

# Static files come straight from the finders (WHITENOISE_USE_FINDERS); no collectstatic dir.
STATIC_ROOT = None
