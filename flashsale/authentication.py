"""`Authorization: Token <key>` without a database query on every request.

DRF's TokenAuthentication reads the token and its user (a join) on each request: ~19% of
a worker's time under purchases. Here the shopper behind a key is kept in the shared
cache (Redis) for TOKEN_CACHE_SECONDS, so a request pays one Redis read instead; every
worker and every instance sees the same entry, so dropping it is immediate everywhere:

- deleting a token (or the user, which cascades to it) marks its entry gone;
- saving a user marks the entries of their tokens gone, so deactivation (and a change of
  `is_staff`) is seen by the next request.

Each process also keeps the entries it has read (flashsale.local_tokens), trusted only
while it is subscribed to the channel on which every one of those invalidations is
published, so most requests pay no round trip at all.

A gone entry sends requests to the database for GONE_SECONDS, and entries are only
written where none is, so a request that read a token just before its delete cannot
write it back.

What is cached is the few columns the API decides on (id, username, is_active, is_staff,
is_superuser); the other fields of the user stay deferred and load on first use, so code
that reads them gets the truth. With Redis down the cache answers "nothing" and every
request falls back to DRF's own query: slower, never wrong. Entries written while a
delete could not reach Redis live at most TOKEN_CACHE_SECONDS (see README, Failure modes).
"""

import hashlib
import logging
from dataclasses import dataclass
from typing import ClassVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from redis.exceptions import RedisError
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from flashsale import local_tokens

logger = logging.getLogger(__name__)

CACHED_FIELDS = ("id", "username", "is_active", "is_staff", "is_superuser")
_MISSING = object()
# An invalidated entry is overwritten with this for a while, and entries are only ever
# written where none is (SET NX): a request that read the token just before it was deleted
# cannot put it back.
GONE = "gone"
GONE_SECONDS = 60


def token_cache_key(key: str) -> str:
    # The key is a credential: Redis holds only its digest.
    return "auth-token:" + hashlib.sha256(key.encode()).hexdigest()


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's token authentication (same answers, same `WWW-Authenticate`), cached in Redis."""

    def authenticate_credentials(self, key):
        user = cached_token_user(key)
        if user is None:
            user, token = super().authenticate_credentials(key)  # raises for unknown or inactive
            remember_token(token)
            return user, token
        if not user.is_active:  # only reachable if an entry outlived a missed invalidation
            raise AuthenticationFailed("User inactive or deleted.")
        return user, Token(key=key, user=user)


def cached_token_user(key: str):
    """The shopper the cache holds for a token key, or None: not cached (or marked gone, or
    the cache is off or down), so only the database can answer. The caller checks `is_active`."""
    columns = cached_token_columns(key)
    return None if columns is None else _deferred_user(columns)


def cached_token_columns(key: str, *, local_only: bool = False) -> dict | None:
    """The cached columns (CACHED_FIELDS) of a token key's shopper, or None, as `cached_token_user`;
    `local_only`: from this process's copy alone, never asking Redis."""
    if settings.TOKEN_CACHE_SECONDS <= 0:
        return None
    cache_key = token_cache_key(key)
    columns = local_tokens.tokens.get(cache_key)
    if columns is None and not local_only:
        seen = local_tokens.tokens.generation()
        cached = cache.get(cache_key, _MISSING)
        if cached is _MISSING or cached == GONE:
            return None
        columns = cached
        local_tokens.tokens.keep(cache_key, columns, seen_generation=seen)
    return columns


@dataclass(frozen=True, slots=True)
class TokenShopper:
    """An active shopper a cached token vouches for, as the purchase fast path needs one: just who.

    The purchase, its limits and its answer read nothing of the user but `pk`; building a
    User model instance (and its init signals) for that was a fifth of a sold-out answer.
    """

    pk: int
    is_authenticated: ClassVar[bool] = True
    is_active: ClassVar[bool] = True


def _deferred_user(columns: dict):
    """A user instance from the cached columns; any other field loads from the database on access."""
    model = get_user_model()
    names = [f.attname for f in model._meta.concrete_fields if f.attname in columns]  # from_db wants model order
    return model.from_db("default", names, [columns[name] for name in names])


def remember_token(token: Token) -> None:
    """Cache the token's shopper; also called when a token is handed out (POST /api/auth/token/),
    so a shopper's first purchase after logging in costs no query either."""
    if token.user.is_active:
        remember_new_shoppers({token.key: {f: getattr(token.user, f) for f in CACHED_FIELDS}})


def remember_new_shoppers(tokens: dict[str, dict]) -> None:
    """Cache tokens (`{token key: cached columns}`) where none is, in one round trip, and
    announce them to every process's local copy (flashsale.local_tokens.announce): a
    shopper's first request anywhere then costs no round trip. Used for one token by
    `remember_token` and in bulk by `create_shoppers`. Redis down: nothing is cached, and
    the first request of each pays DRF's query."""
    if settings.TOKEN_CACHE_SECONDS <= 0 or not tokens:
        return
    try:
        local_tokens.announce({token_cache_key(key): columns for key, columns in tokens.items()})
    except (RedisError, OSError, AttributeError) as exc:  # AttributeError: a cache that is not Redis
        logger.warning("tokens not cached, Redis unavailable: %s", exc)


def forget_tokens(keys: list[str]) -> None:
    """Mark the tokens gone in Redis, then drop them from this process and tell every other one."""
    cache_keys = [token_cache_key(key) for key in keys]
    cache.set_many(dict.fromkeys(cache_keys, GONE), GONE_SECONDS)
    local_tokens.tokens.forget(cache_keys)
    local_tokens.publish_gone(cache_keys)


def _token_deleted(sender, instance, **kwargs) -> None:
    forget_tokens([instance.key])


def _user_saved(sender, instance, created, update_fields=None, **kwargs) -> None:
    if created or (update_fields is not None and not set(update_fields) & set(CACHED_FIELDS)):
        return  # a new user has no token yet; a login's `last_login` save changes nothing cached
    keys = list(Token.objects.filter(user_id=instance.pk).values_list("key", flat=True))
    if keys:
        forget_tokens(keys)


def connect_signals() -> None:
    """Called once from the app's ready(): token deletes and user saves drop cached entries."""
    post_delete.connect(_token_deleted, sender=Token, dispatch_uid="flashsale.authentication.token_deleted")
    post_save.connect(_user_saved, sender=get_user_model(), dispatch_uid="flashsale.authentication.user_saved")
