"""Rate limits on django-ratelimit (counters in Redis through the default cache).

Called by the API and template views before any input is read, in the contract's order
(authentication, rate limits, input...). Redis down: the cache swallows the error, the
limiter fails open (RATELIMIT_FAIL_OPEN) and requests go on unlimited.
"""

import hashlib
import logging
import os
import threading
import time

from django.conf import settings
from django.core.cache import caches
from django.core.signals import setting_changed
from django.dispatch import receiver
from django_ratelimit.core import ALL, EXPIRATION_FUDGE, _get_window, _make_cache_key, _split_rate, get_usage
from hiredis import pack_command
from redis.exceptions import NoScriptError, RedisError

from flashsale.client_ip import client_ip
from flashsale.errors import RateLimited
from flashsale.sockets import readable_now

logger = logging.getLogger(__name__)


def _by_user(group, request) -> str:
    return f"user:{request.user.pk}"


def _by_ip(group, request) -> str:
    return f"ip:{client_ip(request)}"


def _enforce(request, *, group: str, key, rate: str | None) -> None:
    if rate is None:
        return
    usage = get_usage(request, group=group, key=key, rate=rate, increment=True)
    if usage and usage["should_limit"]:
        seconds = max(1, usage["time_left"])
        raise RateLimited(wait_message(seconds), retry_after=seconds)


def wait_message(seconds: int) -> str:
    """The refusal a person reads: always how long to wait (the same figure as Retry-After)."""
    return f"Too many requests. Please wait {seconds} second{'s' if seconds != 1 else ''} before trying again."


# Count each purchase's limits in turn, django-ratelimit style (ADD 1 or INCR, expiring after
# the period plus its fudge), and stop at the first one passed: a refused shopper's requests do
# not count against their address, exactly as two `get_usage` calls in a row would. One call
# counts any number of purchases in arrival order (a purchase group's, see `count_limits`).
# KEYS: every limit of every purchase; ARGV[1]: how many purchases; then per key its limit,
# expiry and purchase number. The answer gives per purchase the position among its own limits
# of the one passed (1 = its first), or 0.
_COUNT_UNTIL_REFUSED = """
local answers, first = {}, {}
for n = 1, tonumber(ARGV[1]) do answers[n] = 0 end
for i, key in ipairs(KEYS) do
  local n = tonumber(ARGV[3 * i + 1])
  first[n] = first[n] or i
  if answers[n] == 0 then
    redis.call('SET', key, 0, 'EX', ARGV[3 * i], 'NX')
    if redis.call('INCR', key) > tonumber(ARGV[3 * i - 1]) then answers[n] = i - first[n] + 1 end
  end
end
return answers
"""
_COUNTER_SHA = hashlib.sha1(_COUNT_UNTIL_REFUSED.encode()).hexdigest()  # EVALSHA; EVAL when the server lacks it
_MAX_IDLE = 32  # connections kept per process for the script; more in flight make their own
# The longest a purchase waits for a count someone else has in flight: a count that long has
# met the cache's socket timeout (0.25 s) and failed open.
_SETTLE_WAIT_SECONDS = 0.5
# Held for a few attribute checks, never across I/O: safe even if made before gevent patches.
_claims = threading.Lock()


class _ScriptConnections:
    """redis-py connections to the cache's Redis, used directly for the counting script.

    Through redis-py's client a call cost ~135 µs of CPU under gevent on the 2-core machine
    (its command layer, retry wrapper, pool checkout and release, observability hooks); the
    same bytes sent on one of its `Connection`s and the answer read by its parser, ~60 µs.
    The connections are made with the cache pool's own class and arguments (address,
    database, password, timeouts) and kept in a list per process; one that failed is dropped,
    and so is a kept one the server has closed meanwhile (a restart, a CLIENT KILL, its
    idle timeout) or that holds bytes no one asked for: its socket is readable while it
    waits for nothing, which one non-blocking poll sees before it is used. Otherwise the
    purchase it served would fail open, its limits skipped.
    """

    def __init__(self):
        self.pool, self.pid, self.idle = None, None, []

    def take(self, pool):
        if pool is not self.pool or self.pid != os.getpid():  # the settings changed, or a forked child
            self.pool, self.pid, self.idle = pool, os.getpid(), []
        while self.idle:
            connection = self.idle.pop()
            sock = connection._sock
            if sock is None or not readable_now(sock):
                return connection
            connection.disconnect()
        return pool.connection_class(**pool.connection_kwargs)

    def give_back(self, pool, connection) -> None:
        if pool is self.pool and len(self.idle) < _MAX_IDLE:
            self.idle.append(connection)
        else:
            connection.disconnect()


_connections = _ScriptConnections()


def _count(pool, *, keys: list[str], args: list[int]) -> list[int]:
    """Run the counting script on one connection: per purchase, the position of its first limit passed, or 0."""
    connection = _connections.take(pool)
    try:
        # hiredis's packer itself (what redis-py's calls), without redis-py's per-argument layer.
        connection.send_packed_command([pack_command(("EVALSHA", _COUNTER_SHA, len(keys), *keys, *args))],
                                       check_health=False)
        try:
            refused = connection.read_response()
        except NoScriptError:  # a new or restarted server: EVAL teaches it the script
            connection.send_packed_command(
                [pack_command(("EVAL", _COUNT_UNTIL_REFUSED, len(keys), *keys, *args))], check_health=False)
            refused = connection.read_response()
    except BaseException:
        connection.disconnect()  # whatever went wrong, its next answer cannot be trusted
        raise
    _connections.give_back(pool, connection)
    return [int(position) for position in refused]


class _LimitKeys:
    """The Redis keys of the purchase limits, and the pool they are counted through, remembered.

    django-ratelimit's key for a limit is a sha256 of its group, rate, value (shopper or
    address) and window, prefixed, then the cache's own prefix and version; working both
    out for every purchase cost ~20 µs of CPU, a fifth of what the limiter adds to one. A
    miss still asks django-ratelimit's `_make_cache_key` and the cache's `make_key`, so a
    kept key is always theirs (the same inputs give the same key). Bounded (cleared when
    full: windows move on, and a sale's crowd is thousands of shoppers), and cleared when a
    setting a key or the pool depends on changes.
    """

    MAX_ENTRIES = 20_000

    def __init__(self):
        self.rates: dict[str, tuple[int, int]] = {}
        self.keys: dict[tuple, str] = {}
        self.pools: dict[str, object] = {}

    def pool(self, alias: str):
        """The connection pool of the cache `alias`'s Redis. Django keeps a cache object per
        thread (so per greenlet), and django-redis makes a client for each: looked up once here."""
        found = self.pools.get(alias)
        if found is None:
            found = self.pools[alias] = caches[alias].client.get_client(write=True).connection_pool
        return found

    def rate(self, rate: str) -> tuple[int, int]:
        """(limit, period in seconds) of a rate string, as `_split_rate` reads it."""
        found = self.rates.get(rate)
        if found is None:
            found = self.rates[rate] = _split_rate(rate)
        return found

    def key(self, alias: str, group: str, rate: str, value: str, window: int) -> str:
        """The cache `alias`'s Redis key for the counter of (group, rate, value) in this window."""
        memo = (alias, group, rate, value, window)
        found = self.keys.get(memo)
        if found is None:
            if len(self.keys) >= self.MAX_ENTRIES:
                self.keys.clear()
            key = _make_cache_key(group, window, rate, value, ALL)
            found = self.keys[memo] = str(caches[alias].client.make_key(key))
        return found

    def clear(self) -> None:
        self.rates.clear()
        self.keys.clear()
        self.pools.clear()


_limit_keys = _LimitKeys()


@receiver(setting_changed)
def _forget_limit_keys(*, setting, **kwargs):
    if setting in ("CACHES", "RATELIMIT_USE_CACHE", "RATELIMIT_CACHE_PREFIX", "RATELIMIT_HASH_ALGORITHM"):
        _limit_keys.clear()


class PendingLimits:
    """One purchase's limits, worked out (keys, windows) but not yet counted.

    Counted once, by `count()` or with others by `count_limits`: a purchase group counts all
    its buyers' in one round trip (orders.services). `refusal` is then the RateLimited the
    purchase gets, or None (under every limit, or Redis unavailable: fail open).
    """

    __slots__ = ("alias", "limits", "counted", "settled", "refusal", "_settling")

    def __init__(self, alias: str, limits: list[tuple[str, int, int, int]]):
        self.alias, self.limits = alias, limits  # (Redis key, limit, expiry, window end) each
        # counted: claimed by a count (set before anything is sent); settled: its answer is in.
        self.counted, self.settled, self.refusal = False, False, None
        self._settling = None  # an Event, made only for a purchase that waits on another's count

    def count(self) -> None:
        """Count them now, unless already counted; raise the refusal if a limit is passed."""
        if not self.counted:
            count_limits([self])
        self.wait_settled()
        if self.refusal is not None:
            raise self.refusal

    def wait_settled(self) -> None:
        """Until the answer of a count someone else has in flight is in (a queued buyer counting
        its line's limits, see orders.services), as long as a count can take: past that the
        count has failed open, and so do these limits. Woken by the count itself, not polled:
        a buyer handed the lead waits here, and every millisecond is the whole group's."""
        if self.settled:
            return
        with _claims:
            if self.settled:
                return
            if self._settling is None:
                self._settling = threading.Event()  # made now, so gevent's when the server is patched
            settling = self._settling
        _wait_for_count(settling)


def _wait_for_count(settling: threading.Event) -> None:
    settling.wait(_SETTLE_WAIT_SECONDS)


def purchase_limits(request) -> PendingLimits | None:
    """Per shopper, then per client address: the limits of this purchase, not yet counted;
    None when no limit is set. `request.user` must be authenticated. No I/O."""
    limits = []
    alias = settings.RATELIMIT_USE_CACHE
    for group, key, rate in (("purchase-user", _by_user, settings.RATE_LIMIT_PURCHASE_USER),
                             ("purchase-ip", _by_ip, settings.RATE_LIMIT_PURCHASE_IP)):
        if rate is not None:
            value = key(group, request)
            limit, period = _limit_keys.rate(rate)
            window = _get_window(value, period)
            limits.append((_limit_keys.key(alias, group, rate, value, window), limit, period + EXPIRATION_FUDGE, window))
    return PendingLimits(alias, limits) if limits else None


def count_limits(pending: list[PendingLimits]) -> None:
    """Count the purchases' limits not yet counted, in their order, in one Redis round trip per
    cache (there is one in practice), and set each one's `refusal`.

    Each is marked counted before anything is sent, so none is ever counted twice (an answer
    lost midway counts as Redis unavailable). Redis down: fail open (RATELIMIT_FAIL_OPEN).
    """
    by_alias: dict[str, list[PendingLimits]] = {}
    with _claims:  # under real threads a leader and a queued buyer may offer the same purchases
        for limits in pending:
            if not limits.counted:
                limits.counted = True
                by_alias.setdefault(limits.alias, []).append(limits)
    try:
        for alias, batch in by_alias.items():
            _count_batch(alias, batch)
    finally:
        _settle([limits for batch in by_alias.values() for limits in batch])


def _settle(counted: list[PendingLimits]) -> None:
    """Their answers are in (or failed open): mark them, and wake whoever waits on one."""
    with _claims:  # against a waiter making its Event between our marking and our look
        for limits in counted:
            limits.settled = True
            if limits._settling is not None:
                limits._settling.set()


def _count_batch(alias: str, batch: list[PendingLimits]) -> None:
    keys, args = [], [len(batch)]
    for number, limits in enumerate(batch, start=1):
        for key, limit, expiry, _window in limits.limits:
            keys.append(key)
            args += (limit, expiry, number)
    try:
        refused = _count(_limit_keys.pool(alias), keys=keys, args=args)
    except (RedisError, OSError) as exc:
        logger.warning("rate limits skipped, Redis unavailable: %s", exc)
        return
    now = int(time.time())
    for limits, position in zip(batch, refused, strict=True):
        if position:
            seconds = max(1, limits.limits[position - 1][3] - now)
            limits.refusal = RateLimited(wait_message(seconds), retry_after=seconds)


def enforce_purchase_limits(request) -> bool:
    """Count this purchase's limits now, in one Redis round trip; raise RateLimited if one is passed.

    True when Redis was asked (whatever it answered): the caller then waited, and other
    requests of its process may have run meanwhile; False when no limit is set.

    django-ratelimit's `get_usage` costs an ADD and, from the second hit of a window on, an
    INCR per limit: up to four round trips a purchase. This counts both limits with
    django-ratelimit's own keys and windows (its `get_usage` reads the same counters) in
    one server-side script, sent on a connection of its own (`_ScriptConnections`). Redis
    down: fail open (RATELIMIT_FAIL_OPEN), as before.
    """
    limits = purchase_limits(request)
    if limits is None:
        return False
    limits.count()
    return True


def enforce_login_limits(request, *, username: str) -> None:
    """Per client address and per username tried, for token, page and admin logins alike.

    The username is the one typed, case-folded (logins match usernames without regard to
    case), whether or not such an account exists, so a guesser cannot tell them apart.
    """
    enforce_signup_limit(request)
    tried = (username or "").strip().casefold()[:150]
    _enforce(request, group="login-user", key=lambda group, request: f"username:{tried}",
             rate=settings.RATE_LIMIT_LOGIN_USER)


def enforce_signup_limit(request) -> None:
    """Per client address only: a signup names no existing account to protect, and keying it
    on the username would let anyone spend another shopper's login tries."""
    _enforce(request, group="login-ip", key=_by_ip, rate=settings.RATE_LIMIT_LOGIN_IP)
