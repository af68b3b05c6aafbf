"""Settings for `make run` and `manage.py` from a checkout: embedded servers by default.

Only reads the environment. Without DATABASE_URL / REDIS_URL they point at the embedded
servers' sockets under .data/; starting those servers (and giving the checkout a
SECRET_KEY) is the entry points' job: `manage.py`, the WSGI module and the `make` holder
call `flashsale.embedded.provide()`.
"""

from flashsale import embedded

from .base import *  # noqa: F403
from .base import DATABASE_URL, REDIS_URL, database_from_url, redis_cache

_embedded = embedded.urls()
DATABASES = {"default": database_from_url(DATABASE_URL or _embedded.database_url)}
CACHES = {"default": redis_cache(REDIS_URL or _embedded.redis_url)}

# Static files come straight from the finders (WHITENOISE_USE_FINDERS); no collectstatic dir.
STATIC_ROOT = None
