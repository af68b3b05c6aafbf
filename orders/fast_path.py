"""`POST /api/orders/` answered before Django's request cycle, when it is the plain case.

A flash sale is thousands of the same request: a token, `{"product_id": N}`, perhaps an
Idempotency-Key. Through Django each one paid ~4 ms of app CPU on this machine class
before the service was even asked (the request object, nine middleware, the URL
resolver, DRF's negotiation, authenticators, parser and serializer), while a known stock
read costs ~0.7 ms in all. This WSGI layer answers exactly those plain requests itself,
with the pieces the DRF view (`orders.api.OrderListCreateApi.post`) uses, in its order:

    token (from the shared cache) -> rate limits -> input -> services.purchase()
    -> order_answer() or the error handler's body (flashsale.api_errors.describe)

rendered by DRF's JSONRenderer into Django's own HttpResponse, which Django's own
SecurityMiddleware and XFrameOptionsMiddleware then dress, so the status, body and
headers are those the DRF view gives (orders/tests/test_fast_path.py compares them case
by case). The purchase itself is the one service every face uses; nothing here decides
anything about a sale.

Everything else is handed to Django unchanged, before any side effect (no limit counted,
nothing read), so Django's answer is the same as it would have been:

- another path or method, a query string, a disallowed Host, an `Accept` that is not
  plain JSON, a body that is not `application/json`;
- no `Authorization: Token <key>`, or a key the cache does not hold (unknown, just
  deleted, not yet cached, cache down) or holds for an inactive user;
- a body that is not exactly a JSON object of `product_id` and optionally `quantity`,
  both whole numbers in range (every refusal of input is Django's);
- a request Django's SecurityMiddleware would redirect to HTTPS;
- any MIDDLEWARE list other than the one this was written against (see KNOWN_MIDDLEWARE):
  a new middleware might change the answer, so the fast path switches itself off until
  someone has looked.

The gevent worker also asks `PurchaseFastPath.known_refusal` for this same answer to a
purchase of a product known sold out, straight from gunicorn's parsed request
(flashsale.early_refusals).

On unless PURCHASE_FAST_PATH=0 (for measuring it, and for the comparison tests).
"""

from __future__ import annotations

import io
import logging
import re
import time
from http.client import responses

from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.log import log_response
from rest_framework.exceptions import ParseError
from rest_framework.renderers import JSONRenderer

from flashsale import metrics, request_cycle
from flashsale.api_errors import SERVER_ERROR_DETAIL, describe, error_body
from flashsale.authentication import TokenShopper, cached_token_columns
from flashsale.error_codes import ErrorCode
from flashsale.errors import RateLimited
from flashsale.hosts import allowed_host
from flashsale.json_logs import QuietSaleOutcomes
from flashsale.parsers import parse_json_body
from flashsale.ratelimits import enforce_purchase_limits, purchase_limits
from flashsale.request_id import HEADER, forget_request_id, request_id_for, use_request_id
from flashsale.serializers import MAX_ID
from orders import services
from orders.api import order_answer
from orders.models import MAX_QUANTITY

PATH = "/api/orders/"
# The middleware whose effect on this endpoint's answer is reproduced here (the request id,
# the security headers, X-Frame-Options) or is nil for a token request without a body
# problem (whitenoise, sessions, the trailing-slash rule, CSRF, auth, messages).
KNOWN_MIDDLEWARE = (
    "flashsale.request_id.request_id_middleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "flashsale.trailing_slash.CommonMiddlewareWithoutApiRedirects",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)
PLAIN_ACCEPT = {"", "*/*", "application/json"}
FIELDS = {"product_id", "quantity"}
# DRF's `Allow` for the view (OrderListCreateApi: get and post, plus HEAD and OPTIONS).
ALLOW = "GET, POST, HEAD, OPTIONS"

logger = logging.getLogger(__name__)
_renderer = JSONRenderer()


def _nothing(request):  # the middleware below only check requests and dress answers; never called onward
    raise AssertionError("unreachable")


class _Answer:
    """An answer made here: what Django's HttpResponse would carry, without building one.

    Its headers are the body's own (type, length, Allow, Retry-After), the request id, and
    the dressing Django's SecurityMiddleware and XFrameOptionsMiddleware add, which depends
    only on the settings and on whether the request is secure (see `PurchaseFastPath._dressing`).
    Closing it ends the request cycle as closing Django's own answers does (flashsale.request_cycle).
    """

    __slots__ = ("status_code", "reason_phrase", "data", "content", "headers", "_has_been_logged")

    def __init__(self, status: int, body: dict, headers: dict | None = None):
        self.status_code, self.reason_phrase, self.data = status, responses[status], body
        self.content = _rendered(body) if status >= 400 else _renderer.render(body)
        self.headers = [("Content-Type", "application/json"), ("Allow", ALLOW),
                        ("Content-Length", str(len(self.content))), *(headers or {}).items()]
        self._has_been_logged = False

    def __iter__(self):
        yield self.content

    def close(self):
        request_cycle.finished()


class _FlatMemo:
    """Made once per distinct flat value and shared: a crowd's refusals are one refusal a
    thousand times over. Only values of strings and numbers (what a tuple key stands for
    exactly); bounded, cleared when full."""

    MAX = 256

    def __init__(self):
        self._made: dict[tuple, object] = {}

    def get(self, status: int, parts: tuple[dict, ...], make, *args):
        """`make(*args)`, or what it made before for the same status and flat parts."""
        for part in parts:
            for value in part.values():
                if type(value) is not str and type(value) is not int:
                    return make(*args)
        key = (status, *[tuple(part.items()) for part in parts])
        found = self._made.get(key)
        if found is None:
            if len(self._made) >= self.MAX:
                self._made.clear()
            found = self._made[key] = make(*args)
        return found


_rendered_refusals = _FlatMemo()
_refusal_answers = _FlatMemo()


def _rendered(body: dict) -> bytes:
    """DRF's JSON for a refusal's body, rendered once per distinct flat body."""
    return _rendered_refusals.get(0, (body,), _renderer.render, body)


def _refusal_answer(refused: tuple) -> _Answer:
    """The early answer for a mark's refusal (describe's triple), made once per distinct
    refusal and shared: nothing on that path changes an answer once made (it is read,
    never logged or closed)."""
    status, body, headers = refused
    return _refusal_answers.get(status, (body, headers), _Answer, status, body, headers)


class PurchaseFastPath:
    """WSGI middleware around the Django application (see flashsale/wsgi.py)."""

    def __init__(self, application):
        self.application = application
        # Django's own, reading the settings as Django's handler does when it loads them.
        self.security = SecurityMiddleware(_nothing)
        self.frame_options = XFrameOptionsMiddleware(_nothing)
        self.enabled = settings.PURCHASE_FAST_PATH and tuple(settings.MIDDLEWARE) == KNOWN_MIDDLEWARE
        if settings.PURCHASE_FAST_PATH and not self.enabled:
            logger.warning("purchase fast path off: MIDDLEWARE differs from orders.fast_path.KNOWN_MIDDLEWARE")
        self._dressings: dict[bool, list[tuple[str, str]]] = {}
        # Statuses whose per-request log line the settings' filters drop (409, 429): not even
        # formatted here, since building the record is most of what logging it costs.
        self.unlogged = frozenset().union(*(f.QUIET for f in logging.getLogger("django.request").filters
                                            if isinstance(f, QuietSaleOutcomes)))

    def _dressing(self, secure: bool) -> list[tuple[str, str]]:
        """The headers Django's two dressing middleware add to a JSON answer, worked out once
        per kind of request (secure or not) by letting them dress an empty one (all they
        read of the request is whether it is secure)."""
        dressing = self._dressings.get(secure)
        if dressing is None:
            sample, request = HttpResponse(content_type="application/json"), _Secure(secure)
            own = set(sample.headers)
            self.security.process_response(request, sample)
            self.frame_options.process_response(request, sample)
            dressing = self._dressings[secure] = [(k, v) for k, v in sample.items() if k not in own]
        return dressing

    def __call__(self, environ, start_response):
        if not self.enabled or environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.application(environ, start_response)
        plain = _plain_purchase(environ)
        if plain is None:
            return self.application(environ, start_response)
        request, user, product_id, quantity = plain
        if self.security.process_request(request) is not None:  # an HTTPS redirect: Django's answer
            return self.application(environ, start_response)
        request_cycle.started(environ)
        request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
        use_request_id(request_id)
        response = _answer(request, user, product_id, quantity, unlogged=self.unlogged)
        start_response(f"{response.status_code} {response.reason_phrase}",
                       [*response.headers, (HEADER, request_id), *self._dressing(request.is_secure())])
        return response

    def known_refusal(self, environ):
        """For the gevent worker (flashsale.early_refusals): (status, headers, body) of the answer
        `__call__` gives a plain purchase of a product the sold-out mark refuses; else None,
        with nothing done (no limit counted, no token looked up in Redis), and the request
        goes the usual way.

        `environ` carries what the request does (its headers as gunicorn maps them, the
        address, the scheme, the body in memory) but none of gunicorn's machinery. The same
        gates as `__call__` (`_plain_parts`, then the shopper, here from the local copy
        only), then the answer from the same pieces: the mark's refusal
        (`services.known_refusal`, what the purchase service's pre-check raises from it),
        decided before the limits are counted, so that a request left to the usual way is
        untouched; the limits (a 429 comes first, as in every other way); and the same body,
        headers, request id, dressing and metrics. Should the mark end or change while the
        limits are counted (a restock or cancel in this process, the window closing), the
        purchase is made as `__call__` makes it, its limits already counted.

        Nothing else touches the database or Django's cache, so there is no request cycle
        to run (as for a replayed stock read); it is not answered here at all while anything
        but Django's own housekeeping listens to the request signals. Nor is a request an
        HTTPS redirect would turn away, one with an Idempotency-Key (its order may exist),
        or any status the log would not drop (409 and 429 are dropped).
        """
        if not (self.enabled and settings.EARLY_REFUSALS) or "HTTP_IDEMPOTENCY_KEY" in environ:
            return None
        secure = _is_secure(environ)
        if (self.security.redirect and not secure) or 429 not in self.unlogged \
                or not request_cycle.only_djangos_housekeeping():
            return None
        parts = _plain_parts(environ)
        if parts is None:
            return None
        key, product_id, quantity = parts
        if not services.may_know_refusal(product_id):  # most purchases: no token lookup here
            return None
        user = _shopper(key, local_only=True)
        if user is None:
            return None
        # The mark is read after the token lookup, which may wait (subscribing to the token
        # channel, the rest of a message) while other requests of this process run.
        refusal = services.known_refusal(product_id=product_id, quantity=quantity)
        if refusal is None:
            return None
        refused = describe(refusal)
        if refused[0] not in self.unlogged:
            return None
        request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
        use_request_id(request_id)
        try:
            answer = self._refuse(environ, user, product_id, quantity, refused)
        finally:
            forget_request_id()
        return (f"{answer.status_code} {answer.reason_phrase}",
                [*answer.headers, (HEADER, request_id), *self._dressing(secure)], answer.content)

    def _refuse(self, environ, user, product_id: int, quantity: int, refused: tuple) -> _Answer:
        """The limits, then the refusal `refused` (describe's triple) if the mark still gives it."""
        started = time.perf_counter()
        try:
            waited = enforce_purchase_limits(_Caller(user, environ))
        except RateLimited as limited:
            answer = _Answer(*describe(limited))
        except Exception as failure:  # as `_answer` answers it
            answer = _failure_answer(failure, WSGIRequest(environ), unlogged=self.unlogged)
        else:
            # Read again only if Redis was asked: nothing else waits between the first read
            # and here, so without that wait nothing else in this process ran meanwhile.
            changed = False
            if waited:
                again = services.known_refusal(product_id=product_id, quantity=quantity)
                changed = again is None or describe(again) != refused
            if changed:
                request = WSGIRequest(environ)
                request_cycle.started(environ)
                answer = _answer(request, user, product_id, quantity, unlogged=self.unlogged, limits_counted=True)
                answer.close()  # ends the request cycle; the answer is all rendered
                return answer
            answer = _refusal_answer(refused)
        metrics.purchase_answered(answer, started=started)
        return answer


class _Secure:
    """All Django's dressing middleware read of a request: whether it is secure."""

    def __init__(self, secure: bool):
        self._secure = secure

    def is_secure(self) -> bool:
        return self._secure


class _Caller:
    """What the rate limits read of a request (the shopper, and the address in its META)."""

    __slots__ = ("user", "META")

    def __init__(self, user, meta):
        self.user, self.META = user, meta


def _is_secure(environ) -> bool:
    """Django's `request.is_secure()` for this environ (HttpRequest.scheme, SECURE_PROXY_SSL_HEADER first)."""
    if settings.SECURE_PROXY_SSL_HEADER:
        header, secure_value = settings.SECURE_PROXY_SSL_HEADER
        value = environ.get(header)
        if value is not None:
            return value.split(",", 1)[0].strip() == secure_value
    return environ.get("wsgi.url_scheme") == "https"


def _plain_purchase(environ):
    """(request, user, product_id, quantity) for a request answered here, else None (Django's)."""
    plain = _plain_request(environ)
    if plain is None:
        return None
    return WSGIRequest(environ), *plain


def _plain_request(environ):
    """(user, product_id, quantity) of a plain token purchase, from its environ; else None."""
    parts = _plain_parts(environ)
    if parts is None:
        return None
    key, product_id, quantity = parts
    user = _shopper(key)
    return None if user is None else (user, product_id, quantity)


def _shopper(key: str, *, local_only: bool = False) -> TokenShopper | None:
    """The active shopper the token cache holds for a key, or None (then Django's authentication decides)."""
    columns = cached_token_columns(key, local_only=local_only)
    if columns is None or not columns["is_active"]:
        return None
    return TokenShopper(pk=columns["id"])


def _plain_parts(environ):
    """(token key, product_id, quantity) of a request of the plain shape, before the token is looked up; else None."""
    if environ.get("QUERY_STRING") or environ.get("HTTP_ACCEPT", "") not in PLAIN_ACCEPT:
        return None
    media_type, _, parameters = environ.get("CONTENT_TYPE", "").partition(";")
    if media_type.strip().lower() != "application/json" or parameters.strip().lower() not in ("", "charset=utf-8"):
        return None
    scheme, _, key = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "token" or not key or " " in key or not key.isascii() or not allowed_host(environ):
        return None
    data = _body(environ)
    if data is None:
        return None
    product_id, quantity = data.get("product_id"), data.get("quantity", 1)
    if not (_whole(product_id, MAX_ID) and _whole(quantity, MAX_QUANTITY)):
        return None
    return key, product_id, quantity


# The plain body, as clients send it: `{"product_id": N}` or with `"quantity": M`, either order,
# JSON whitespace anywhere between tokens, numbers without sign, fraction or leading zero. What
# this matches, the API's parser reads as exactly that dict; anything else goes to the parser.
_WS = rb"[ \t\n\r]*"
_NUMBER = rb"(0|[1-9][0-9]{0,18})"
_PLAIN_BODY = re.compile(
    rb"%(ws)s\{%(ws)s\"(product_id|quantity)\"%(ws)s:%(ws)s%(n)s%(ws)s"
    rb"(?:,%(ws)s\"(product_id|quantity)\"%(ws)s:%(ws)s%(n)s%(ws)s)?\}%(ws)s" % {b"ws": _WS, b"n": _NUMBER})


def _plain_body(raw: bytes) -> dict | None:
    """The body of the common shape without the JSON parser, or None (then the parser decides)."""
    found = _PLAIN_BODY.fullmatch(raw)
    if found is None:
        return None
    first, first_value, second, second_value = found.groups()
    if second is not None and second == first:
        return None  # a duplicate key: the parser's refusal
    data = {first.decode(): int(first_value)}
    if second is not None:
        data[second.decode()] = int(second_value)
    return data


def _body(environ) -> dict | None:
    stream = environ.get("wsgi.input")
    if not isinstance(stream, io.BytesIO):  # RequestBodyGate has read every body it let through
        return None
    raw = stream.getvalue()
    plain = _plain_body(raw)
    if plain is not None:
        return plain if "product_id" in plain else None
    try:
        data = parse_json_body(raw)
    except ParseError:
        return None
    return data if isinstance(data, dict) and data.keys() <= FIELDS and "product_id" in data else None


def _whole(value, most: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= most


def _answer(request, user, product_id: int, quantity: int, *, unlogged=frozenset(),
            limits_counted: bool = False) -> _Answer:
    with metrics.purchase_request() as record:
        try:
            request.user = user
            # Counted by the purchase, first in the contract's order: with other buyers' of its
            # group when it reaches one (many in one Redis round trip), else on its own.
            result = services.purchase(
                user=user, product_id=product_id, quantity=quantity,
                idempotency_key=request.META.get("HTTP_IDEMPOTENCY_KEY"),
                admission_pass=request.META.get("HTTP_ADMISSION_PASS"),
                limits=None if limits_counted else purchase_limits(request),
            )
        except Exception as failure:
            return record("response", _failure_answer(failure, request, unlogged=unlogged))
        return record("response", _Answer(201, order_answer(result.order)))


def _failure_answer(failure: Exception, request, *, unlogged) -> _Answer:
    """The answer to a purchase that raised: its contract code, or a logged 500."""
    status, body, headers = describe(failure)
    unexpected = status is None
    if unexpected:
        status, body, headers = 500, error_body(ErrorCode.SERVER_ERROR, SERVER_ERROR_DETAIL), {}
    response = _Answer(status, body, headers)
    if status not in unlogged:  # Django's own line for an answer >= 400
        log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request,
                     exception=failure if unexpected else None)
    return response
