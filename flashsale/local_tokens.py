"""The token cache's entries kept in this process too, for as long as it hears every invalidation.

A token's shopper comes from Redis (flashsale.authentication): one round trip per request,
which under gevent cost about as much CPU as the rest of a refusal. This process keeps the
entries it has read, and trusts them only while it is subscribed to the invalidation
channel on which `forget_tokens` publishes every token it marks gone (a delete, a user
save):

- Before each lookup, the invalidations already delivered to this process are applied
  with a non-blocking read of the subscription. Redis writes a PUBLISH to its subscribers
  before it answers the publisher, so on one host a request that follows a delete (the
  delete's reply came back first) always finds that delete applied here.
- An entry read from Redis is kept only if no invalidation was applied while it was being
  read (the generation below); a delete racing the read cannot leave it behind.
- Not subscribed (Redis down, the subscription dropped, a new process): nothing local is
  trusted, and everything kept is dropped, because invalidations may have been missed.
  Lookups go to Redis, and without Redis to the database, as before.
- An entry lives at most TOKEN_CACHE_SECONDS, like its Redis twin, so an invalidation
  that could not be published (Redis unreachable for the publisher only) still ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_MAX_ENTRIES = 200_000  # ~100 MB at worst; a flood of distinct tokens cannot grow it without bound
_RETRY_SECONDS = 1.0
_SUBSCRIBE_TIMEOUT = 0.25  # as the cache's own socket timeouts


def channel() -> str:
    return cache.make_key("auth-token-gone")


class LocalTokens:
    def __init__(self):
        self._entries: dict[str, tuple[float, dict]] = {}
        self._lock = threading.Lock()
        self._pubsub = None
        self._owner = None  # (pid, cache location): a forked child or another Redis starts afresh
        self._generation = 0
        self._retry_at = 0.0

    def get(self, key: str) -> dict | None:
        """The columns kept for a token cache key, or None (ask Redis)."""
        if not settings.TOKEN_LOCAL_COPY or not self._listening():
            return None
        found = self._entries.get(key)
        if found is None or time.monotonic() >= found[0]:
            return None
        return found[1]

    def generation(self) -> int:
        """Read before reading an entry from Redis; hand it back to `keep`."""
        return self._generation

    def keep(self, key: str, columns: dict, *, seen_generation: int) -> None:
        with self._lock:
            if self._pubsub is None or self._generation != seen_generation:
                return
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + settings.TOKEN_CACHE_SECONDS, columns)

    def forget(self, keys: list[str]) -> None:
        with self._lock:
            self._generation += 1
            for key in keys:
                self._entries.pop(key, None)

    def _listening(self) -> bool:
        """Apply the invalidations delivered so far; False when not subscribed.

        The lock is never held across a wait: subscribing happens outside it, and the
        reads under it are non-blocking (safe even for a lock made before gevent patched
        `threading`, as with gunicorn's --preload).
        """
        owner = (os.getpid(), str(settings.CACHES.get("default", {}).get("LOCATION")))
        with self._lock:
            if self._owner != owner:
                self._drop(close=self._owner is not None and self._owner[0] == owner[0])
                self._owner, self._retry_at = owner, 0.0
            subscribed = self._pubsub is not None
        if not subscribed:
            pubsub = self._subscribe()
            if pubsub is None:
                return False
            with self._lock:
                if self._pubsub is None and self._owner == owner:
                    self._pubsub, pubsub = pubsub, None
            if pubsub is not None:
                _close(pubsub)  # another thread subscribed meanwhile
        with self._lock:
            if self._pubsub is None:
                return False
            try:
                while (message := self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0)) is not None:
                    self._generation += 1
                    for key in message["data"].decode().split():
                        self._entries.pop(key, None)
            except (RedisError, OSError) as exc:
                logger.warning("token invalidations not heard, local token entries dropped: %s", exc)
                self._drop(close=True)
                return False
            return True

    def _subscribe(self):
        """A confirmed subscription to the invalidation channel, or None (retried after a second)."""
        if time.monotonic() < self._retry_at:
            return None
        pubsub = None
        try:
            pubsub = cache.client.get_client(write=True).pubsub()
            pubsub.subscribe(channel())
            confirmed = pubsub.get_message(timeout=_SUBSCRIBE_TIMEOUT)
            if not confirmed or confirmed.get("type") != "subscribe":
                raise RedisError("no subscription confirmed")
        except (RedisError, OSError, AttributeError) as exc:  # AttributeError: a cache that is not Redis
            logger.info("token invalidations not subscribed: %s", exc)
            if pubsub is not None:
                _close(pubsub)
            self._retry_at = time.monotonic() + _RETRY_SECONDS
            return None
        return pubsub

    def _drop(self, *, close: bool) -> None:
        if self._pubsub is not None and close:
            _close(self._pubsub)
        self._pubsub = None
        self._entries.clear()
        self._generation += 1


def _close(pubsub) -> None:
    with contextlib.suppress(RedisError, OSError):
        pubsub.close()


def publish_gone(keys: list[str]) -> None:
    """Tell every process (every instance on this Redis) to drop these token cache keys."""
    try:
        cache.client.get_client(write=True).publish(channel(), " ".join(keys))
    except (RedisError, OSError, AttributeError) as exc:
        logger.warning("token invalidation not published (entries end within TOKEN_CACHE_SECONDS): %s", exc)


tokens = LocalTokens()
