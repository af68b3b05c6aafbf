"""Settings for pytest: real PostgreSQL and Redis (embedded unless the env names servers).

Only reads the environment, like `local`; the root conftest starts the embedded servers.
"""

from flashsale import embedded

from .base import *  # noqa: F403
from .base import DATABASE_URL, REDIS_URL, database_from_url, redis_cache

_embedded = embedded.urls()
DATABASE_URL = DATABASE_URL or _embedded.database_url
REDIS_URL = REDIS_URL or _embedded.redis_url
DATABASES = {"default": database_from_url(DATABASE_URL)}
# Tests open many threads, each with its own connection: close them after each request
# so a burst of threads does not exhaust the server's connection slots.
DATABASES["default"]["CONN_MAX_AGE"] = 0
CACHES = {"default": redis_cache(REDIS_URL)}
CACHES["default"]["KEY_PREFIX"] = "flashsale-test"

# Tests read the stock right after writing it; the cache's own tests turn it back on.
STOCK_READ_CACHE_MS = 0

SECRET_KEY = "test-only-not-secret"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]  # noqa: F405

# Static files come straight from the finders (WHITENOISE_USE_FINDERS); no collectstatic dir.
STATIC_ROOT = None
