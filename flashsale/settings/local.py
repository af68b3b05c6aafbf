"""Settings for `make run` and `manage.py` from a checkout: embedded servers by default."""

from .base import *  # noqa: F403
from .base import BASE_DIR, DATABASE_URL, REDIS_URL, database_from_url, redis_cache
from .embedded_defaults import embedded_urls, local_secret_key

DATABASE_URL, REDIS_URL = embedded_urls(DATABASE_URL, REDIS_URL)
DATABASES = {"default": database_from_url(DATABASE_URL)}
CACHES = {"default": redis_cache(REDIS_URL)}

SECRET_KEY = SECRET_KEY or local_secret_key(BASE_DIR)  # noqa: F405

# Static files come straight from the finders (WHITENOISE_USE_FINDERS); no collectstatic dir.
STATIC_ROOT = None
