"""Django's `request_started` / `request_finished` for answers made before Django (orders.fast_path).

Django's handler sends both signals around every request; their receivers are its
housekeeping: clear the query log and close unusable or expired database connections at
the start, close them again, close the caches and reset the URLconf at the end. For a
sold-out answer that housekeeping, dispatched through two signals, was about a sixth of
what the fast path spends in Python (26 µs of ~150 on the 2-core machine): four passes
over the connections, a django-redis `close()` that does nothing, a URLconf reset for a
request that never set one.

So when the receivers connected are exactly the known ones below (nothing else listens)
the same work is done directly, once: one pass over this context's connections (clear the
log, close if unusable or expired, as Django's two receivers would), the request id
forgotten, and

- `close_caches` only where a cache's `close()` does something: every django-redis
  cache with CLOSE_CONNECTION off (the shipped settings) is left alone;
- `reset_urlconf` not at all: only Django's own handler sets a URLconf, and it resets
  it itself when its request finishes (the fast path never sets one).

Any other receiver (a test's, a library's, CaptureQueriesContext's disconnected
`reset_queries`) and the signals are sent as Django sends them, receivers and all.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signals
from django.core.cache import caches, close_caches
from django.core.handlers.base import reset_urlconf
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import setting_changed
from django.db import close_old_connections, connections, reset_queries
from django.dispatch import receiver

from flashsale import request_id

_STARTED = (reset_queries, close_old_connections)
_FINISHED = (close_old_connections, close_caches, reset_urlconf, request_id.forget_request_id)
_REDIS_CACHE = "django_redis.cache.RedisCache"
_REDIS_CLIENTS = {None, "django_redis.client.DefaultClient", "django_redis.client.default.DefaultClient"}

_checked: dict = {}  # signal -> (its receiver list when checked, whether it was exactly the known one)
_caches_close_nothing: bool | None = None  # worked out from the settings on first use


def started(environ) -> None:
    if _only(signals.request_started, _STARTED):
        _tidy_connections()
    else:
        signals.request_started.send(sender=WSGIHandler, environ=environ)


def finished() -> None:
    if _only(signals.request_finished, _FINISHED):
        _tidy_connections()
        if not _closing_caches_does_nothing():
            caches.close_all()
        request_id.forget_request_id()
    else:
        signals.request_finished.send(sender=WSGIHandler)


def only_djangos_housekeeping() -> bool:
    """True while nothing but Django's own housekeeping (and the request id's) listens to
    the request signals: an answer made without sending them then hides nothing from anyone."""
    return _only(signals.request_started, _STARTED) and _only(signals.request_finished, _FINISHED)


def _only(signal, known: tuple) -> bool:
    """True when the signal's live receivers for the WSGI handler are exactly `known` (in any
    order: import order decides it, and none of them depends on another).

    Worked out through Django's own `_live_receivers` whenever the signal's receiver list
    differs from the one last checked (a receiver connected or disconnected since), so the
    usual case costs one list comparison.
    """
    receivers = signal.receivers
    checked = _checked.get(signal)
    if checked is not None and checked[0] == receivers and not signal._dead_receivers:
        return checked[1]
    sync, asynchronous = signal._live_receivers(WSGIHandler)
    plain = not asynchronous and len(sync) == len(known) and set(sync) == set(known)  # in any order
    _checked[signal] = (list(receivers), plain)
    return plain


def _tidy_connections() -> None:
    """`reset_queries` and `close_old_connections` in one pass over this context's connections."""
    for connection in connections.all(initialized_only=True):
        connection.queries_log.clear()
        connection.close_if_unusable_or_obsolete()


def _closing_caches_does_nothing() -> bool:
    global _caches_close_nothing  # noqa: PLW0603 (a fact of the settings, reset when they change)
    if _caches_close_nothing is None:
        _caches_close_nothing = all(
            cache.get("BACKEND") == _REDIS_CACHE
            and cache.get("OPTIONS", {}).get("CLIENT_CLASS") in _REDIS_CLIENTS
            and not cache.get("OPTIONS", {}).get("CLOSE_CONNECTION",
                                                  getattr(settings, "DJANGO_REDIS_CLOSE_CONNECTION", False))
            for cache in settings.CACHES.values()
        )
    return _caches_close_nothing


@receiver(setting_changed)
def _settings_changed(*, setting, **kwargs) -> None:
    global _caches_close_nothing  # noqa: PLW0603
    if setting in {"CACHES", "DJANGO_REDIS_CLOSE_CONNECTION"}:
        _caches_close_nothing = None
