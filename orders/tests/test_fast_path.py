"""The purchase fast path (orders.fast_path) answers exactly as the DRF view does, or not at all.

Each case is run twice on twin fixtures: once through the fast path and once through
Django alone (the fast path switched off), both behind the request-body gate as
flashsale.wsgi has them, and the two answers must be the same (status, headers, body;
only what names the twin differs: ids, names, times, request ids). A second set of cases
proves the requests it must leave to Django reach Django untouched, with nothing counted.
"""

import io
import json
import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token

from flashsale import metrics
from flashsale.authentication import remember_token, token_cache_key
from flashsale.request_body import RequestBodyGate
from orders.fast_path import PurchaseFastPath
from orders.models import Order
from orders.services import purchase
from waiting_room import passes

pytestmark = pytest.mark.django_db


class Recorder:
    """The inner application: Django, counting the requests that reach it."""

    def __init__(self):
        self.django = get_wsgi_application()
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.django(environ, start_response)


@pytest.fixture(autouse=True)
def _connection_kept_open():
    """As Django's test client does: request signals must not close the test's transaction."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def make_apps(settings):
    """(fast path, Django alone, the recorder behind the fast path), built with the settings of the moment."""

    def make():
        settings.PURCHASE_FAST_PATH = True
        inner = Recorder()
        fast = RequestBodyGate(PurchaseFastPath(inner))
        settings.PURCHASE_FAST_PATH = False
        django_only = RequestBodyGate(PurchaseFastPath(get_wsgi_application()))
        settings.PURCHASE_FAST_PATH = True
        return fast, django_only, inner

    return make


@pytest.fixture
def apps(make_apps):
    return make_apps()


def call(app, body: bytes | None, *, token: str | None = None, content_type="application/json", **headers):
    body = b"" if body is None else body
    environ = {
        "REQUEST_METHOD": headers.pop("method", "POST"), "PATH_INFO": headers.pop("path", "/api/orders/"),
        "QUERY_STRING": headers.pop("query", ""), "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
        "HTTP_HOST": headers.pop("host", "127.0.0.1"), "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(), "wsgi.url_scheme": "http", "wsgi.version": (1, 0),
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
        **{"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()},
    }
    if token:
        environ["HTTP_AUTHORIZATION"] = f"Token {token}"
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers

    result = app(environ, start_response)
    try:
        payload = b"".join(result)
    finally:
        result.close()
    return seen["status"], seen["headers"], payload


def comparable(answer, *, names: dict):
    """The answer with what names the twin (ids, product name, time, request id) masked."""
    status, headers, body = answer
    masked = {"X-Request-ID": "<id>", "Retry-After": "<seconds>"}
    # Retry-After: django-ratelimit staggers each key's window, so the twins' waits differ.
    headers = sorted((name, masked.get(name, value)) for name, value in headers if name not in ("Content-Length", "Date"))
    data = json.loads(body)
    for field, value in names.items():
        if data.get(field) == value:
            data[field] = f"<{field}>"
    if data.get("code") == "rate_limited":
        # The waits differ (see Retry-After), and so may the plural: "1 second" / "2 seconds".
        data["detail"] = re.sub(r"[0-9]+ seconds?", "<n> seconds", data["detail"])
    for field in ("id", "created_at"):
        if field in data and status.startswith("201"):
            data[field] = f"<{field}>"
    return status, headers, data


@pytest.fixture
def twins(make_user, make_product):
    """`twins(**product_fields)`: for each arm a (shopper's token, product), set up alike."""

    def make(*, cached=True, **fields):
        arms = []
        for _ in range(2):
            user = make_user()
            token = Token.objects.create(user=user)
            if cached:
                remember_token(token)
            arms.append((user, token.key, make_product(**fields)))
        return arms

    return make


def same_answer(apps, arms, body_for, **headers):
    fast, django_only, inner = apps
    answers = []
    for app, (_user, token, product) in zip((fast, django_only), arms, strict=True):
        answer = call(app, body_for(product), token=token, **headers)
        answers.append(comparable(answer, names={"product_id": product.pk, "product_name": product.name}))
    assert answers[0] == answers[1]
    assert inner.calls == 0, "the fast path handed a plain purchase to Django"
    return answers[0]


def buy_body(quantity=None):
    def body(product):
        data = {"product_id": product.pk} if quantity is None else {"product_id": product.pk, "quantity": quantity}
        return json.dumps(data).encode()

    return body


@pytest.mark.parametrize(("fields", "quantity", "status", "code"), [
    ({"stock": 5}, None, "201 Created", None),
    ({"stock": 5}, 3, "201 Created", None),
    ({"stock": 0}, None, "409 Conflict", "sold_out"),
    ({"stock": 2}, 3, "409 Conflict", "insufficient_stock"),
    ({"stock": 5, "max_per_user": 1}, 2, "409 Conflict", "purchase_limit_reached"),
    ({"stock": 5, "starts_in": timedelta(hours=1)}, None, "409 Conflict", "sale_not_started"),
    ({"stock": 5, "starts_in": timedelta(hours=-2), "ends_in": timedelta(hours=-1)}, None, "409 Conflict",
     "sale_ended"),
    ({"stock": 5, "waiting_room": True}, None, "403 Forbidden", "admission_required"),
])
def test_every_outcome_of_the_service_is_answered_as_the_view_answers_it(apps, twins, no_rate_limits,
                                                                        fields, quantity, status, code):
    got_status, headers, data = same_answer(apps, twins(**fields), buy_body(quantity))
    assert got_status == status
    assert data.get("code") == code
    assert ("Allow", "GET, POST, HEAD, OPTIONS") in headers and ("X-Frame-Options", "DENY") in headers


def test_an_unknown_product_is_the_same_404(apps, twins, no_rate_limits):
    answer = same_answer(apps, twins(), lambda product: b'{"product_id": 999999999}')
    assert answer[0] == "404 Not Found" and answer[2]["code"] == "not_found"


def test_a_rate_limited_purchase_is_the_same_429_with_retry_after(apps, twins, settings):
    settings.RATE_LIMIT_PURCHASE_USER = "1/m"
    settings.RATE_LIMIT_PURCHASE_IP = None
    arms = twins(stock=5)
    same_answer(apps, arms, buy_body())
    status, headers, data = same_answer(apps, arms, buy_body())
    assert status == "429 Too Many Requests" and data["code"] == "rate_limited"
    assert ("Retry-After", "<seconds>") in headers


def test_idempotency_keys_replay_refuse_and_validate_alike(apps, twins, no_rate_limits):
    arms = twins(stock=5)
    first = same_answer(apps, arms, buy_body(), idempotency_key="key-1")
    replay = same_answer(apps, arms, buy_body(), idempotency_key="key-1")
    assert first[0] == replay[0] == "201 Created"
    for _user, _token, product in arms:
        assert Order.objects.filter(product=product).count() == 1
    reused = same_answer(apps, arms, buy_body(2), idempotency_key="key-1")
    assert reused[0] == "422 Unprocessable Entity" and reused[2]["code"] == "idempotency_key_reused"
    bad_key = same_answer(apps, arms, buy_body(), idempotency_key="a key with spaces")
    assert bad_key[0] == "400 Bad Request" and bad_key[2]["code"] == "invalid"


def test_a_waiting_room_pass_is_read_from_its_header(apps, twins, no_rate_limits):
    fast, _django_only, inner = apps
    user, token, product = twins(stock=5, waiting_room=True)[0]
    admitted = passes.issue_pass(shopper_id=user.pk, product_id=product.pk, expires_ms=passes.to_ms(timezone.now()) + 60_000)
    status, _headers, body = call(fast, buy_body()(product), token=token, admission_pass=admitted)
    assert status == "201 Created" and json.loads(body)["remaining_stock"] == 4
    assert inner.calls == 0


def test_the_callers_request_id_is_echoed(apps, twins, no_rate_limits):
    fast, _django_only, _inner = apps
    _user, token, product = twins()[0]
    _status, headers, _body = call(fast, buy_body()(product), token=token, x_request_id="trace-123")
    assert ("X-Request-ID", "trace-123") in headers


def test_an_answer_is_counted_and_ends_the_request_as_django_does(apps, twins, no_rate_limits):
    fast, _django_only, _inner = apps
    _user, token, product = twins(stock=0)[0]
    before = metrics.PURCHASES.labels(code="sold_out")._value.get()
    finished = []

    def on_finished(**kwargs):
        finished.append(kwargs)

    request_finished.connect(on_finished)
    try:
        call(fast, buy_body()(product), token=token)
    finally:
        request_finished.disconnect(on_finished)
    assert metrics.PURCHASES.labels(code="sold_out")._value.get() == before + 1
    assert len(finished) == 1  # close_old_connections runs: the pooled connection goes back


def test_a_database_failure_is_the_views_503(apps, twins, no_rate_limits, monkeypatch):
    from django.db import OperationalError

    from orders import services

    def lost(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(services, "_reject_early", lost)
    status, headers, data = same_answer(apps, twins(), buy_body())
    assert status == "503 Service Unavailable" and data["code"] == "unavailable"
    assert ("Retry-After", "<seconds>") in headers


@pytest.mark.parametrize(("body", "headers"), [
    (b"", {}),
    (b"not json", {}),
    (b'{"product_id": 1, "product_id": 2}', {}),
    (b'{"product_id": "1"}', {}),
    (b'{"product_id": 1.0}', {}),
    (b'{"product_id": true}', {}),
    (b'{"product_id": 1, "quantity": 0}', {}),
    (b'{"product_id": 1, "quantity": 1000000}', {}),
    (b'{"product_id": 1, "colour": "red"}', {}),
    (b"[1]", {}),
    (b'{"quantity": 1}', {}),
    (b'{"product_id": 1}', {"content_type": "application/x-www-form-urlencoded"}),
    (b'{"product_id": 1}', {"content_type": "application/json; charset=latin-1"}),
    (b'{"product_id": 1}', {"accept": "text/html"}),
    (b'{"product_id": 1}', {"query": "format=json"}),
    (b'{"product_id": 1}', {"host": "evil.example"}),
    (b'{"product_id": 1}', {"path": "/api/orders"}),
    (b'{"product_id": 1}', {"method": "PUT"}),
])
def test_anything_but_a_plain_purchase_is_left_to_django(apps, twins, settings, body, headers):
    settings.RATE_LIMIT_PURCHASE_USER = "100/m"
    fast, _django_only, inner = apps
    _user, token, _product = twins()[0]
    call(fast, body, token=token, **headers)
    assert inner.calls == 1


@pytest.mark.parametrize("credentials", ["none", "unknown", "not cached", "inactive", "malformed"])
def test_a_token_the_cache_cannot_vouch_for_is_left_to_django(apps, twins, credentials):
    fast, _django_only, inner = apps
    user, token, product = twins(cached=credentials not in ("not cached", "inactive"))[0]
    if credentials == "inactive":  # an entry written for a user already inactive (never announced)
        cache.set(token_cache_key(token), {"id": user.pk, "username": user.username, "is_active": False,
                                           "is_staff": False, "is_superuser": False})
    token = {"none": None, "unknown": "0" * 40, "malformed": f"{token} extra"}.get(credentials, token)
    status, _headers, body = call(fast, buy_body()(product), token=token)
    assert inner.calls == 1
    if credentials == "not cached":
        assert status == "201 Created"  # and Django's answer cached the token for the next one
        call(fast, buy_body()(product), token=token)
        assert inner.calls == 1
    else:
        assert status == "401 Unauthorized" and json.loads(body)["code"] == "not_authenticated"


def test_a_request_django_would_redirect_to_https_is_left_to_django(make_apps, twins, settings):
    settings.SECURE_SSL_REDIRECT = True
    fast, _django_only, inner = make_apps()
    _user, token, product = twins()[0]
    status, _headers, _body = call(fast, buy_body()(product), token=token)
    assert inner.calls == 1 and status.startswith("301")


def test_behind_a_tls_proxy_the_answer_carries_hsts_as_djangos_does(make_apps, twins, settings, no_rate_limits):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    status, headers, _data = same_answer(make_apps(), twins(), buy_body(), x_forwarded_proto="https")
    assert status == "201 Created"
    assert ("Strict-Transport-Security", "max-age=3600") in headers


def test_another_middleware_list_switches_the_fast_path_off(settings, twins):
    settings.PURCHASE_FAST_PATH = True
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    inner = Recorder()
    app = RequestBodyGate(PurchaseFastPath(inner))
    _user, token, product = twins()[0]
    call(app, buy_body()(product), token=token)
    assert inner.calls == 1


def test_a_purchase_made_here_is_the_services_order(apps, twins, no_rate_limits):
    fast, _django_only, _inner = apps
    user, token, product = twins(stock=3)[0]
    status, _headers, body = call(fast, buy_body(2)(product), token=token)
    order = Order.objects.get(pk=json.loads(body)["id"])
    assert status == "201 Created" and (order.user_id, order.quantity, order.remaining_stock) == (user.pk, 2, 1)
    product.refresh_from_db()
    assert product.stock == 1
    purchase(user=user, product_id=product.pk, quantity=1)  # the same service, from any face
    product.refresh_from_db()
    assert product.stock == 0


def test_the_served_application_has_the_fast_path_on():
    """gunicorn serves flashsale.wsgi.application: the fast path must be in it, and enabled."""
    from flashsale.wsgi import application

    layers = []
    layer = application
    while layer is not None:
        layers.append(type(layer).__name__)
        if isinstance(layer, PurchaseFastPath):
            assert layer.enabled
        layer = getattr(layer, "application", None) or getattr(layer, "app", None)
    assert layers[:3] == ["StockReadReplay", "RequestBodyGate", "PurchaseFastPath"]


def test_a_refusal_is_logged_as_django_logs_it(apps, twins, no_rate_limits, caplog):
    fast, django_only, _inner = apps
    lines = []
    for app, (_user, token, _product) in zip((fast, django_only), twins(), strict=True):
        caplog.clear()
        call(app, b'{"product_id": 999999999}', token=token)
        lines.append([(r.name, r.levelname, r.getMessage(), getattr(r, "status_code", None))
                      for r in caplog.records if r.name == "django.request"])
    assert lines[0] == lines[1] == [("django.request", "WARNING", "Not Found: /api/orders/", 404)]


def test_a_host_remembered_as_allowed_is_refused_once_allowed_hosts_change(apps, twins, settings):
    """The fast path remembers each Host's verdict; a change of ALLOWED_HOSTS forgets them."""
    fast, _django_only, inner = apps
    _user, token, product = twins()[0]
    call(fast, buy_body()(product), token=token, host="localhost")
    assert inner.calls == 0  # allowed: answered here
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    status, _headers, _body = call(fast, buy_body()(product), token=token, host="localhost")
    assert inner.calls == 1 and status.startswith("400")


def test_a_refusal_rendered_once_is_the_same_bytes_as_drfs(apps, twins):
    fast, django_only, _inner = apps
    (_u1, fast_token, fast_product), (_u2, token, product) = twins(stock=0)
    for _ in range(2):
        fast_answer = call(fast, buy_body()(fast_product), token=fast_token)
    assert fast_answer[2] == call(django_only, buy_body()(product), token=token)[2] == (
        b'{"detail":"Sold out.","code":"sold_out"}')


# The plain body read without the JSON parser must be what the parser reads, or nothing.

_JSON_SPACE = st.text(alphabet=" \t\n\r", max_size=2)
_BODY_PIECES = st.one_of(
    st.sampled_from(['"product_id"', '"quantity"', '"colour"', '"product_id" ', '"PRODUCT_ID"']),
    st.sampled_from(["{", "}", ":", ",", "1", "0", "01", "-1", "1.0", "1e3", "true", "null", '"1"', "[1]"]),
    st.integers(min_value=0, max_value=10**20).map(str),
    _JSON_SPACE,
    st.text(max_size=3),
)


def _parsed_or_none(raw: bytes):
    from rest_framework.exceptions import ParseError

    from flashsale.parsers import parse_json_body

    try:
        return parse_json_body(raw)
    except ParseError:
        return None


@given(st.lists(_BODY_PIECES, max_size=12).map("".join))
@hypothesis_settings(max_examples=2000, deadline=None)
def test_the_plain_body_reader_agrees_with_the_parser_on_any_text(text):
    from orders.fast_path import _plain_body

    raw = text.encode()
    plain = _plain_body(raw)
    assert plain is None or plain == _parsed_or_none(raw)


@given(st.dictionaries(st.sampled_from(["product_id", "quantity"]), st.integers(min_value=0, max_value=10**19 - 1),
                       min_size=1), _JSON_SPACE, _JSON_SPACE, st.sampled_from([", ", ",", " ,\n"]))
@hypothesis_settings(max_examples=300, deadline=None)
def test_the_plain_body_reader_reads_every_plain_body(data, before, after, comma):
    from orders.fast_path import _plain_body

    raw = (before + "{" + comma.join(f'"{k}":{after}{v}' for k, v in data.items()) + "}" + after).encode()
    assert _plain_body(raw) == data == _parsed_or_none(raw)


def test_a_duplicate_key_is_left_to_the_parser():
    from orders.fast_path import _plain_body

    assert _plain_body(b'{"product_id": 1, "product_id": 2}') is None
