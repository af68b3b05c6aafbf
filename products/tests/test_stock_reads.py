"""The stock endpoint's replay before Django (products.stock_reads), driven through Django's real WSGI handler."""

import io
import json

import pytest
from django.core.wsgi import get_wsgi_application

from orders.services import purchase
from products.stock_reads import StockReadReplay

pytestmark = pytest.mark.django_db(transaction=True)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def replay(settings):
    settings.STOCK_READ_CACHE_MS = 500
    settings.STOCK_READ_REPLAY = True
    clock = Clock()
    return StockReadReplay(get_wsgi_application(), clock=clock), clock


def call(app, path, *, method="GET", host="127.0.0.1", request_id=None):
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80", "HTTP_HOST": host, "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""), "wsgi.errors": io.StringIO(), "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    if request_id:
        environ["HTTP_X_REQUEST_ID"] = request_id
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return int(seen["status"].split()[0]), seen["headers"], body


def stock_of(body: bytes) -> int:
    return json.loads(body)["stock"]


def test_a_known_answer_is_replayed_with_the_same_headers_and_a_new_request_id(replay, make_product):
    app, _clock = replay
    product = make_product(stock=3)
    path = f"/api/products/{product.pk}/stock/"
    first = call(app, path)
    again = call(app, path)
    assert first[0] == again[0] == 200
    assert json.loads(again[2]) == {"id": product.pk, "stock": 3, "status": "active"}
    assert again[2] == first[2]
    assert again[1]["Cache-Control"] == "no-store" and again[1]["Content-Type"] == "application/json"
    assert {k: v for k, v in again[1].items() if k != "X-Request-ID"} == \
        {k: v for k, v in first[1].items() if k != "X-Request-ID"}
    assert first[1]["X-Request-ID"] != again[1]["X-Request-ID"]
    assert call(app, path, request_id="trace-42")[1]["X-Request-ID"] == "trace-42"
    assert len(call(app, path, request_id="bad id\r\n")[1]["X-Request-ID"]) == 32  # refused, a fresh one


def test_the_copy_is_at_most_the_setting_old_then_read_again(replay, make_product, shopper):
    app, clock = replay
    product = make_product(stock=3)
    path = f"/api/products/{product.pk}/stock/"
    assert stock_of(call(app, path)[2]) == 3
    purchase(user=shopper, product_id=product.pk)
    clock.now += 0.499
    assert stock_of(call(app, path)[2]) == 3  # within 500 ms: the copy
    clock.now += 0.002
    assert stock_of(call(app, path)[2]) == 2  # older: read again, and from the row, not the view's copy


def test_refusals_are_never_replayed(replay, make_product):
    app, _clock = replay
    product = make_product(stock=3)
    for _ in range(2):
        status, headers, body = call(app, "/api/products/999999999/stock/")
        assert status == 404 and json.loads(body)["code"] == "not_found"
    call(app, f"/api/products/{product.pk}/stock/")  # known now
    status, _headers, body = call(app, f"/api/products/{product.pk}/stock/", method="POST")
    assert status == 405 and json.loads(body)["code"] == "method_not_allowed"
    assert call(app, f"/api/products/{product.pk}/stock/", host="evil.example")[0] == 400


def test_it_steps_aside_when_turned_off(settings, replay, make_product, shopper):
    app, _clock = replay
    product = make_product(stock=3)
    path = f"/api/products/{product.pk}/stock/"
    call(app, path)
    purchase(user=shopper, product_id=product.pk)
    settings.STOCK_READ_REPLAY = False
    settings.STOCK_READ_CACHE_MS = 0  # the view's own copy too
    assert stock_of(call(app, path)[2]) == 2
