"""The token cache's entries kept in this process too, for as long as it hears every invalidation.

A token's shopper comes from Redis (flashsale.authentication): one round trip per request,
which under gevent cost about as much CPU as the rest of a refusal. This process keeps the
entries it has read, and trusts them only while it is subscribed to the invalidation
channel on which `forget_tokens` publishes every token it marks gone (a delete, a user
save):

- Before each lookup, the invalidations already delivered to this process are applied
  with a non-blocking read of the subscription. Redis writes a PUBLISH to its subscribers
  in the same turn of its event loop as its answer to the publisher (possibly just after
  it), so on one host a request that follows a delete (the delete's reply came back, then
  an HTTP answer, then a new request) finds that delete delivered and applies it here. Once a read has
  emptied redis-py's buffer, "delivered" means bytes in the socket, so the next lookups
  ask the kernel directly (one poll(2), not through gevent's hub) and read only when the
  socket has some.
- An entry read from Redis is kept only if no invalidation was applied while it was being
  read (the generation below); a delete racing the read cannot leave it behind.
- Not subscribed (Redis down, the subscription dropped, a new process): nothing local is
  trusted, and everything kept is dropped, because invalidations may have been missed.
  Lookups go to Redis, and without Redis to the database, as before.
- An entry lives at most TOKEN_CACHE_SECONDS, like its Redis twin, so an invalidation
  that could not be published (Redis unreachable for the publisher only) still ends.

So that a shopper's *first* request in a process costs no round trip either (a flash
sale is thousands of shoppers who each ask once or twice), every entry is also heard of
when it is written, not only when it is read:

- `announce` writes entries to Redis (where none is, SET NX, as before) and publishes the
  ones it wrote on the same channel, in one server-side script: Redis orders that publish
  against every invalidation, so a process hears "born" before "gone", never the reverse,
  and an entry refused by a gone mark is never announced.
- A process that subscribes loads the entries Redis already holds (bounded by
  _WARM_ENTRIES), after its subscription is confirmed: what was invalidated before is a
  gone mark in Redis and is skipped; what is invalidated during the load arrives on the
  subscription and is applied after it.

Under a crowd (docs/decisions/token-announcements.md, "Later"): announcements go out at
most _ANNOUNCE_CHUNK entries to a message; a message that has begun to arrive is read
whole (waiting up to _REST_OF_MESSAGE_SECONDS), since a read that fails midway must drop
everything; and a worker's watcher (`listen`) applies deliveries as they arrive and
subscribes again after a loss, so the crowd finds no backlog.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import threading
import time

from django.conf import settings
from django.core.cache import cache
from redis.commands.core import Script
from redis.exceptions import RedisError

from flashsale.sockets import readable_now

logger = logging.getLogger(__name__)

_MAX_ENTRIES = 200_000  # ~100 MB at worst; a flood of distinct tokens cannot grow it without bound
_RETRY_SECONDS = 1.0
_SUBSCRIBE_TIMEOUT = 0.25  # as the cache's own socket timeouts
# How long a read waits for the rest of a message that has begun to arrive: on a saturated
# gevent worker the reader may resume only after hundreds of ready greenlets have run.
_REST_OF_MESSAGE_SECONDS = 2.0
_WARM_ENTRIES = 50_000  # entries a subscribing process loads at most (~0.5 s on this machine class)
_WARM_BATCH = 1000
_WATCH_SECONDS = 1.0  # the watcher looks at the subscription again at least this often
# A message on the channel is either invalidated keys separated by spaces, or this marker
# followed by announced entries, one `cache-key JSON-columns` per line.
_BORN = b"+"
# Entries per announcement message: ~15 KB, so Redis writes a message to a subscriber's socket
# whole and a lookup's non-blocking read finds it complete, rather than waiting (and, on a
# saturated worker, timing out) for the rest of a 1,000-shopper message.
_ANNOUNCE_CHUNK = 100
# SET NX each entry (KEYS[i], ARGV[i+1]: its encoded value, ARGV[1]: the expiry) and publish
# those written, with their columns as JSON (ARGV[n+1+i]), on the channel (ARGV[2n+2]), at
# most _ANNOUNCE_CHUNK to a message.
_ANNOUNCE = """
local n = #KEYS
local written, born = 0, {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[i + 1], 'NX', 'EX', ARGV[1]) then
    written = written + 1
    born[#born + 1] = key .. ' ' .. ARGV[n + 1 + i]
    if #born == CHUNK then
      redis.call('PUBLISH', ARGV[2 * n + 2], '+' .. table.concat(born, '\\n'))
      born = {}
    end
  end
end
if #born > 0 then redis.call('PUBLISH', ARGV[2 * n + 2], '+' .. table.concat(born, '\\n')) end
return written
""".replace("CHUNK", str(_ANNOUNCE_CHUNK))
_ANNOUNCE_SCRIPT = Script(None, _ANNOUNCE.encode())


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
        self._subscribing = False
        # True once a read of the subscription ended with nothing left in redis-py's buffer:
        # until the socket has bytes again, there is nothing delivered to apply.
        self._drained = False
        self._watcher_pid = None  # the process whose `_watch` runs (a forked child starts its own)
        self._watcher = None
        self._forgotten: dict[str, float] = {}  # keys this process marked gone, until when (see `forget`)

    def get(self, key: str) -> dict | None:
        """The columns kept for a token cache key, or None (ask Redis)."""
        if not settings.TOKEN_LOCAL_COPY or not self._listening():
            return None
        found = self._entries.get(key)
        if found is None or time.monotonic() >= found[0]:
            return None
        return found[1]

    def listen(self) -> bool:
        """Subscribe (and load what Redis holds) now rather than at the first lookup, and keep
        applying what the subscription delivers as it arrives; True if subscribed.

        A worker calls it once it has booted (gunicorn.conf.py's post_worker_init), so a sale's
        first crowd finds every worker listening, not subscribing while the crowd waits, and
        finds the announcements of the sale's shoppers (made while the worker was idle)
        already applied, not waiting in the socket for the crowd's first lookup to read.
        """
        if not settings.TOKEN_LOCAL_COPY:
            return False
        subscribed = self._listening()
        with self._lock:
            start = self._watcher_pid != os.getpid()
            self._watcher_pid = os.getpid()
        if start:
            self._watcher = threading.Thread(target=self._watch, name="token-announcements", daemon=True)
            self._watcher.start()
        return subscribed

    def stop_watching(self) -> None:
        """End `_watch` (for tests: a process keeps its watcher for life otherwise)."""
        self._watcher_pid = None
        if self._watcher is not None:
            self._watcher.join(_WATCH_SECONDS + _RETRY_SECONDS + 1)
            self._watcher = None

    def _watch(self) -> None:
        """Apply deliveries when they arrive, and subscribe again after a loss, without a lookup.

        Lookups do not depend on it (each still applies whatever is delivered first); it only
        keeps the backlog a lookup finds short. A greenlet under gevent (threading and select
        are patched), a daemon thread otherwise.
        """
        while self._watcher_pid == os.getpid():
            try:
                sock = _subscription_socket(self._pubsub)
                if sock is None:
                    time.sleep(_RETRY_SECONDS)
                else:
                    select.select([sock.fileno()], [], [], _WATCH_SECONDS)
                if settings.TOKEN_LOCAL_COPY:
                    self._listening()
            except Exception as exc:  # a socket closed under the wait, a settings change: look again later
                logger.debug("token announcements watcher: %s", exc)
                time.sleep(_RETRY_SECONDS)

    def generation(self) -> int:
        """Read before reading an entry from Redis; hand it back to `keep`."""
        return self._generation

    def keep(self, key: str, columns: dict, *, seen_generation: int) -> None:
        with self._lock:
            if self._pubsub is None or self._generation != seen_generation:
                return
            self._store(key, time.monotonic() + settings.TOKEN_CACHE_SECONDS, columns)

    def forget(self, keys: list[str]) -> None:
        """Drop keys this process has just marked gone in Redis. An announcement of them that
        was published before the gone mark but is read after this (it may still be on its way)
        must not bring them back, so they are refused from announcements for an entry's life."""
        until = time.monotonic() + settings.TOKEN_CACHE_SECONDS
        with self._lock:
            self._generation += 1
            if len(self._forgotten) >= _MAX_ENTRIES:
                self._forgotten.clear()
            for key in keys:
                self._entries.pop(key, None)
                self._forgotten[key] = until

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
            if not subscribed and self._subscribing:
                return False  # another thread is subscribing (and loading): ask Redis meanwhile
            self._subscribing = not subscribed
        if not subscribed:
            try:
                seen = self._generation
                pubsub = self._subscribe()
                if pubsub is None:
                    return False
                try:
                    warmed = self._warm()
                except (RedisError, OSError) as exc:
                    logger.info("token entries not loaded at subscription: %s", exc)
                    warmed = {}
            finally:
                self._subscribing = False
            with self._lock:
                if self._pubsub is None and self._owner == owner:
                    self._pubsub, pubsub = pubsub, None
                    if self._generation == seen and len(warmed) < _MAX_ENTRIES:  # no local forget meanwhile
                        self._entries.update(warmed)
            if pubsub is not None:
                _close(pubsub)  # another thread subscribed meanwhile
        with self._lock:
            if self._pubsub is None:
                return False
            if self._drained and not _socket_has_bytes(self._pubsub):
                return True
            self._drained = False
            try:
                # Only what has begun to arrive is read, but a message that has begun is read
                # whole: redis-py's get_message(timeout=0) would read its rest with a timeout
                # of 0 and fail whenever a message is split across the socket's reads.
                while self._pubsub.connection.can_read(timeout=0):
                    message = self._pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=_REST_OF_MESSAGE_SECONDS)
                    if message is not None:
                        self._apply(message["data"])
                self._drained = True
            except (RedisError, OSError) as exc:
                logger.warning("token invalidations not heard, local token entries dropped: %s", exc)
                self._drop(close=True)
                return False
            return True

    def _apply(self, data: bytes) -> None:
        """One message of the channel, under the lock: entries announced, or keys gone."""
        if data.startswith(_BORN):
            expires = time.monotonic() + settings.TOKEN_CACHE_SECONDS
            now = time.monotonic()
            for line in data[len(_BORN):].decode().split("\n"):
                redis_key, _, columns = line.partition(" ")
                key = _unprefixed(redis_key)
                if self._forgotten.get(key, 0) > now:
                    continue  # announced before this process marked it gone (see `forget`)
                self._store(key, expires, json.loads(columns))
            return
        self._generation += 1
        for key in data.decode().split():
            self._entries.pop(key, None)

    def _store(self, key: str, expires: float, columns: dict) -> None:
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (expires, columns)

    def _warm(self) -> dict[str, tuple[float, dict]]:
        """The entries Redis holds, for a process that has just subscribed (see the module doc).

        Read without the lock, after the subscription is confirmed and before it is installed,
        so every invalidation published meanwhile is applied after these entries, and wins.
        """
        from flashsale.authentication import GONE

        client = cache.client.get_client(write=True)
        pattern = cache.make_key("auth-token:*")
        now = time.monotonic()
        warmed: dict[str, tuple[float, dict]] = {}
        cursor = 0
        while len(warmed) < _WARM_ENTRIES:
            cursor, keys = client.scan(cursor, match=pattern, count=_WARM_BATCH)
            if keys:
                pipe = client.pipeline(transaction=False)
                for key in keys:
                    pipe.get(key)
                    pipe.pttl(key)
                answers = pipe.execute()
                for key, raw, ttl_ms in zip(keys, answers[::2], answers[1::2], strict=True):
                    if raw is None or ttl_ms <= 0:
                        continue
                    columns = cache.client.decode(raw)
                    if columns == GONE or not isinstance(columns, dict):
                        continue
                    warmed[_unprefixed(key.decode())] = (now + ttl_ms / 1000, columns)
            if cursor == 0:
                break
        return warmed

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
        self._pubsub, self._drained = None, False
        self._entries.clear()
        self._generation += 1


def _subscription_socket(pubsub):
    """The socket redis-py reads the subscription from, or None (not subscribed, not connected)."""
    connection = pubsub.connection if pubsub is not None else None
    return getattr(connection, "_sock", None) if connection is not None else None


def _socket_has_bytes(pubsub) -> bool:
    """Whether the subscription's socket has something to read (or is closed): poll(2) at once.

    redis-py's own readiness check goes through `select.poll`, which gevent replaces with
    one that waits in the hub (a timer and a switch, most of a refusal's lookup); this
    asks the kernel (flashsale.sockets). True whenever unsure (no socket), so the caller reads.
    """
    sock = _subscription_socket(pubsub)
    return True if sock is None else readable_now(sock)


def _close(pubsub) -> None:
    with contextlib.suppress(RedisError, OSError):
        pubsub.close()


def _unprefixed(redis_key: str) -> str:
    """The cache key (as `cache.get` takes it) of a key as Redis holds it (`:1:auth-token:…`)."""
    return redis_key[redis_key.index("auth-token:"):]


def announce(entries: dict[str, dict]) -> int:
    """Cache `{cache key: columns}` where none is, and tell every listening process of those written.

    One round trip. Returns how many were written; raises RedisError when Redis is down.
    """
    if not entries:
        return 0
    keys = list(entries)
    args = [settings.TOKEN_CACHE_SECONDS, *(cache.client.encode(entries[key]) for key in keys),
            *(json.dumps(entries[key], separators=(",", ":")) for key in keys), channel()]
    return _ANNOUNCE_SCRIPT(keys=[cache.make_key(key) for key in keys], args=args,
                            client=cache.client.get_client(write=True))


def publish_gone(keys: list[str]) -> None:
    """Tell every process (every instance on this Redis) to drop these token cache keys."""
    try:
        cache.client.get_client(write=True).publish(channel(), " ".join(keys))
    except (RedisError, OSError, AttributeError) as exc:
        logger.warning("token invalidation not published (entries end within TOKEN_CACHE_SECONDS): %s", exc)


tokens = LocalTokens()
