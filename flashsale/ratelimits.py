"""Rate limits on django-ratelimit (counters in Redis through the default cache).

Called by the API and template views before any input is read, in the contract's order
(authentication, rate limits, input...). Redis down: the cache swallows the error, the
limiter fails open (RATELIMIT_FAIL_OPEN) and requests go on unlimited.
"""

from django.conf import settings
from django_ratelimit.core import get_usage

from flashsale.client_ip import client_ip
from flashsale.errors import RateLimited


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


def enforce_purchase_limits(request) -> None:
    """Per shopper and per client address; `request.user` must be authenticated."""
    _enforce(request, group="purchase-user", key=_by_user, rate=settings.RATE_LIMIT_PURCHASE_USER)
    _enforce(request, group="purchase-ip", key=_by_ip, rate=settings.RATE_LIMIT_PURCHASE_IP)


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
