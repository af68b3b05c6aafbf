"""Sold-out answers made from gunicorn's parsed request (flashsale.early_refusals).

The shipped worker (flashsale.gunicorn_worker.ShopGeventWorker) serves raw bytes over a
socket pair, in this process, with the application flashsale.wsgi builds; each case runs
with the early answers on and off and the bytes on the wire must be the same (but for the
Date and a fresh request id). A spy on the worker says which way each request went, so a
test cannot pass by both ways being the usual one. The requests that must go the usual way
go it untouched, with their limits counted once.
"""

import io
import re
import socket
import threading
import time
from datetime import timedelta

import pytest
from django.core.wsgi import get_wsgi_application
from django.utils import timezone
from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.http import wsgi as gunicorn_wsgi
from gunicorn.http.body import Body, LengthReader

from flashsale import early_refusals, gunicorn_worker
from flashsale.request_body import RequestBodyGate
from orders import fast_path
from orders.fast_path import PurchaseFastPath
from orders.models import Order
from orders.services import known_refusal, purchase
from products import sold_out
from products.errors import SoldOut
from products.services import restock
from products.stock_reads import StockReadReplay
from tests.faults import token_for

pytestmark = pytest.mark.django_db(transaction=True)

PEER = ("127.0.0.1", 40000)
LISTENER = ("127.0.0.1", 8000)


class _Listener:
    def getsockname(self):
        return LISTENER


_stacks = []  # the application of the current test, shared by its workers as a process's are


def _application():
    """flashsale.wsgi's stack, built with the settings of the moment."""
    purchases = PurchaseFastPath(get_wsgi_application())
    application = StockReadReplay(RequestBodyGate(purchases))
    application.known_refusal = purchases.known_refusal
    return application


class Worker:
    """The shipped worker's connection handling, on one end of a socket pair; `ways` records
    how each request was answered (True / False: early, None: the WSGI stack)."""

    def __init__(self, *, early: bool = True, cfg: Config | None = None):
        self.cfg = cfg or Config()
        if cfg is None:
            self.cfg.set("keepalive", 5)
        worker = object.__new__(gunicorn_worker.ShopGeventWorker)
        worker.cfg, worker.log, worker.nr, worker.max_requests, worker.alive = \
            self.cfg, Logger(self.cfg), 0, 10 ** 9, True
        if not _stacks:
            _stacks.append(_application())
        worker.wsgi = _stacks[0]
        worker.early_refusal = early_refusals.answerer(worker.wsgi, self.cfg, worker.log) if early else None
        self.worker, self.ways = worker, []
        answer_early = worker._answer_early

        def spy(*args):
            way = answer_early(*args)
            self.ways.append(way)
            return way

        worker._answer_early = spy

    def exchange(self, data: bytes) -> bytes:
        """Send `data`, end the client's side, serve the connection to its end, return every byte answered."""
        saved = gunicorn_wsgi.Response, gunicorn_wsgi.util.http_date
        gunicorn_wsgi.Response, gunicorn_wsgi.util.http_date = gunicorn_worker.CoalescingResponse, \
            gunicorn_worker.http_date  # as the worker's init_process sets them
        client, server = socket.socketpair()
        received = []
        reader = threading.Thread(target=lambda: received.extend(iter(lambda: client.recv(65536), b"")))
        try:
            reader.start()
            client.sendall(data)
            client.shutdown(socket.SHUT_WR)
            self.worker.handle(_Listener(), server, PEER)
            reader.join(10)
        finally:
            gunicorn_wsgi.Response, gunicorn_wsgi.util.http_date = saved
            client.close()
        return b"".join(received)


def purchase_bytes(token: str, product_id: int, *, extra: str = "", version: str = "1.1", body: bytes | None = None):
    body = body if body is not None else b'{"product_id": %d}' % product_id
    return (f"POST /api/orders/ HTTP/{version}\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def comparable(answers: bytes) -> bytes:
    answers = re.sub(rb"Date: [^\r]*", b"Date: <date>", answers)
    return re.sub(rb"X-Request-ID: [0-9a-f]{32}", b"X-Request-ID: <fresh>", answers)


def statuses(answers: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"HTTP/1\.[01] (\d{3}) ", answers)]


@pytest.fixture
def sold_out_sale(make_user, make_product):
    """A sold-out product, known as such in this process, and a shopper whose token the local copy holds."""
    product = make_product(stock=0)
    token = token_for(make_user())
    warm = Worker().exchange(purchase_bytes(token, product.pk))  # the pre-check reads stock 0: the mark
    assert statuses(warm) == [409] and sold_out.sold_out_facts(product.pk) is not None
    return product, token


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch):
    # Marks live 0.5 s; a loaded machine must not see one end between a test's requests.
    monkeypatch.setattr(sold_out, "MARK_SECONDS", 60)
    sold_out._marks.clear()
    _stacks.clear()
    yield
    sold_out._marks.clear()
    _stacks.clear()


def test_a_sold_out_purchase_is_answered_early_with_the_same_bytes(sold_out_sale):
    product, token = sold_out_sale
    request = purchase_bytes(token, product.pk, extra="X-Request-ID: shopper-chosen-1\r\nUser-Agent: t\r\n")
    early, usual = Worker(), Worker(early=False)
    answered_early, answered_usually = early.exchange(request), usual.exchange(request)
    assert early.ways == [True] and usual.ways == [None]
    assert comparable(answered_early) == comparable(answered_usually)
    assert b"HTTP/1.1 409 Conflict\r\n" in answered_early and b'"code":"sold_out"' in answered_early
    assert b"X-Request-ID: shopper-chosen-1\r\n" in answered_early
    assert b"Connection: keep-alive\r\n" in answered_early


def test_different_refusals_in_a_row_each_get_their_own_bytes(sold_out_sale, make_product, no_rate_limits):
    """Early answers are made once per distinct refusal and shared: none bleeds into another."""
    product, token = sold_out_sale
    ended = make_product(stock=0)
    Worker().exchange(purchase_bytes(token, ended.pk))  # its mark
    until, facts = sold_out._marks[ended.pk]
    sold_out._marks[ended.pk] = (until, {**facts, "sale_ends_at": timezone.now() - timedelta(seconds=1)})
    requests = (purchase_bytes(token, product.pk) + purchase_bytes(token, ended.pk)
                + purchase_bytes(token, product.pk, body=b'{"product_id": %d, "quantity": 2}' % product.pk)
                + purchase_bytes(token, ended.pk))
    early, usual = Worker(), Worker(early=False)
    answered_early, answered_usually = early.exchange(requests), usual.exchange(requests)
    assert early.ways == [True] * 4 and usual.ways == [None] * 4
    assert comparable(answered_early) == comparable(answered_usually)
    codes = re.findall(rb'"code":"(\w+)"', answered_early)
    assert codes == [b"sold_out", b"sale_ended", b"sold_out", b"sale_ended"]


def test_pipelined_requests_keep_their_framing_around_early_answers(sold_out_sale, make_product):
    product, token = sold_out_sale
    on_sale = make_product(stock=5)
    requests = (purchase_bytes(token, product.pk) + purchase_bytes(token, product.pk)
                + f"GET /api/products/{product.pk}/stock/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
                + purchase_bytes(token, on_sale.pk) + purchase_bytes(token, product.pk))
    early = Worker()
    answered = early.exchange(requests)
    assert statuses(answered) == [409, 409, 200, 201, 409]
    assert early.ways == [True, True, None, None, True]  # the GET and the real sale went the usual way
    on_sale.refresh_from_db()
    assert on_sale.stock == 4 and Order.objects.filter(product=on_sale).count() == 1


@pytest.mark.parametrize(("extra", "version", "closes"), [
    ("Connection: close\r\n", "1.1", True),
    ("", "1.0", True),
    ("Connection: keep-alive\r\n", "1.0", False),
])
def test_connection_rules_are_gunicorns(sold_out_sale, extra, version, closes):
    product, token = sold_out_sale
    request = purchase_bytes(token, product.pk, extra=extra, version=version) * 2
    early, usual = Worker(), Worker(early=False)
    answered_early, answered_usually = early.exchange(request), usual.exchange(request)
    assert early.ways == ([False] if closes else [True, True])
    assert comparable(answered_early) == comparable(answered_usually)
    assert len(statuses(answered_early)) == (1 if closes else 2)


def test_a_draining_worker_closes_after_an_early_answer(sold_out_sale):
    product, token = sold_out_sale
    early = Worker()
    early.worker.max_requests = 1  # the next request is this worker's last
    answered = early.exchange(purchase_bytes(token, product.pk) * 2)
    assert early.ways == [False] and statuses(answered) == [409]
    assert b"Connection: close\r\n" in answered and early.worker.alive is False


@pytest.mark.parametrize("case", ["idempotency key", "chunked body", "unknown token", "another field",
                                  "query string", "not json", "quantity zero",
                                  "body over the upload limit"])
def test_requests_the_mark_cannot_answer_go_the_usual_way(sold_out_sale, case, settings):
    product, token = sold_out_sale
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100  # the body gate refuses more (413)
    request = {
        "idempotency key": purchase_bytes(token, product.pk, extra="Idempotency-Key: k-1\r\n"),
        "chunked body": (f"POST /api/orders/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n"
                         f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
        + b"%x\r\n" % len(b'{"product_id": %d}' % product.pk) + b'{"product_id": %d}' % product.pk + b"\r\n0\r\n\r\n",
        "unknown token": purchase_bytes("0" * 40, product.pk),
        "another field": purchase_bytes(token, product.pk, body=b'{"product_id": %d, "note": 1}' % product.pk),
        "query string": purchase_bytes(token, product.pk).replace(b"/api/orders/ ", b"/api/orders/?x=1 "),
        "not json": purchase_bytes(token, product.pk).replace(b"application/json", b"text/plain"),
        "quantity zero": purchase_bytes(token, product.pk, body=b'{"product_id": %d, "quantity": 0}' % product.pk),
        "body over the upload limit": purchase_bytes(token, product.pk, body=b'{"product_id": %d}' % product.pk
                                                     + b" " * 120),
    }[case]
    early, usual = Worker(), Worker(early=False)
    answered_early, answered_usually = early.exchange(request), usual.exchange(request)
    assert early.ways == [None]
    assert comparable(answered_early) == comparable(answered_usually)


def test_without_a_fresh_mark_the_purchase_goes_to_the_row_lock(sold_out_sale):
    product, token = sold_out_sale
    restock(product=product, quantity=1)  # clears the mark in this process
    early = Worker()
    answered = early.exchange(purchase_bytes(token, product.pk))
    assert early.ways == [None] and statuses(answered) == [201]
    assert Order.objects.filter(product=product).count() == 1


def test_limits_are_counted_once_whichever_way_a_request_goes(sold_out_sale, make_product, settings):
    product, token = sold_out_sale
    on_sale = make_product(stock=5)
    # A fresh shopper, and a rate of its own (django-ratelimit's keys carry the rate): nothing counted yet.
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "4/h", None
    early = Worker()
    answered = early.exchange(purchase_bytes(token, product.pk) * 2 + purchase_bytes(token, on_sale.pk)
                              + purchase_bytes(token, product.pk) * 2)
    assert early.ways == [True, True, None, True, True]
    # Four counted (two early, one the usual way, one early), the fifth refused by the limit.
    assert statuses(answered) == [409, 409, 201, 409, 429]
    assert b"Retry-After: " in answered.rsplit(b"HTTP/1.1 ", 1)[1]


def test_a_mark_ended_while_the_limits_were_counted_lets_the_purchase_through(sold_out_sale, monkeypatch):
    product, token = sold_out_sale
    counted = []

    def limits_then_restock_meanwhile(request):
        counted.append(request.user.pk)
        restock(product=product, quantity=1)  # clears the mark on commit, as another greenlet's restock would
        return True  # Redis was asked: others ran meanwhile

    monkeypatch.setattr(fast_path, "enforce_purchase_limits", limits_then_restock_meanwhile)
    early = Worker()
    answered = early.exchange(purchase_bytes(token, product.pk))
    assert early.ways == [True] and statuses(answered) == [201] and len(counted) == 1
    assert Order.objects.filter(product=product).count() == 1
    assert comparable(answered).count(b"X-Frame-Options: DENY") == 1


@pytest.mark.parametrize("limits", [False, True])
def test_the_mark_is_read_again_only_after_waiting_for_the_limits(sold_out_sale, settings, monkeypatch, limits):
    """With no limit set nothing waits between the two, so nothing could have changed the mark."""
    product, token = sold_out_sale
    settings.RATE_LIMIT_PURCHASE_USER = "100/h" if limits else None
    settings.RATE_LIMIT_PURCHASE_IP = None
    reads = []

    def counted_read(**kwargs):
        reads.append(kwargs)
        return known_refusal(**kwargs)

    monkeypatch.setattr(fast_path.services, "known_refusal", counted_read)
    early = Worker()
    answered = early.exchange(purchase_bytes(token, product.pk))
    assert early.ways == [True] and statuses(answered) == [409]
    assert len(reads) == (2 if limits else 1)


@pytest.mark.parametrize("limits", [None, "100/h"])
def test_a_mark_cleared_while_the_token_was_looked_up_lets_the_purchase_through(sold_out_sale, settings,
                                                                                 monkeypatch, limits):
    """The local token copy may wait (subscribing, the rest of a message) while another
    greenlet restocks: the mark is read after that lookup, with or without limits to count."""
    product, token = sold_out_sale
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = limits, None
    looked_up = fast_path._shopper

    def lookup_while_restocked(key, **kwargs):
        if kwargs.get("local_only"):
            restock(product=product, quantity=1)  # clears the mark on commit
        return looked_up(key, **kwargs)

    monkeypatch.setattr(fast_path, "_shopper", lookup_while_restocked)
    early = Worker()
    answered = early.exchange(purchase_bytes(token, product.pk))
    assert statuses(answered) == [201]
    assert Order.objects.filter(product=product).count() == 1


def test_a_mark_due_for_renewal_is_renewed_the_usual_way(sold_out_sale):
    product, token = sold_out_sale
    until, facts = sold_out._marks[product.pk]
    sold_out._marks[product.pk] = (time.monotonic() + sold_out.REFRESH_AHEAD_SECONDS / 2, facts)
    restock(product=product, quantity=1)  # made elsewhere: this process's mark is not cleared
    sold_out._marks[product.pk] = (time.monotonic() + sold_out.REFRESH_AHEAD_SECONDS / 2, facts)
    early = Worker()
    answered = early.exchange(purchase_bytes(token, product.pk))
    assert early.ways == [None] and statuses(answered) == [201]


def test_off_while_someone_else_listens_to_the_request_signals(sold_out_sale):
    from django.core.signals import request_started

    product, token = sold_out_sale
    seen = []

    def listener(**kwargs):
        seen.append(kwargs)

    request_started.connect(listener)
    try:
        early = Worker()
        assert statuses(early.exchange(purchase_bytes(token, product.pk))) == [409]
        assert early.ways == [None] and seen
    finally:
        request_started.disconnect(listener)


def test_the_shipped_worker_finds_the_answerer_in_the_shipped_application():
    from flashsale import wsgi

    worker = object.__new__(gunicorn_worker.ShopGeventWorker)
    worker.cfg = Config()
    worker.log = Logger(worker.cfg)
    worker.app = type("App", (), {"wsgi": staticmethod(lambda: wsgi.application)})()
    worker.load_wsgi()
    assert worker.early_refusal == wsgi.purchase_fast_path.known_refusal


def test_the_environ_is_what_gunicorn_builds(sold_out_sale):
    product, token = sold_out_sale
    cfg = Config()
    cfg.set("forwarded_allow_ips", "127.0.0.1")
    raw = purchase_bytes(token, product.pk, extra="Accept: */*\r\nX-Forwarded-Proto: https\r\nX-Forwarded-For: 10.1.1.1\r\n"
                         "X-Forwarded-For: 10.2.2.2\r\nCookie: a=1\r\n")
    client, server = socket.socketpair()
    with client, server:
        client.sendall(raw)
        req = next(gunicorn_worker.ShopRequestParser(cfg, server, PEER))
        body = early_refusals.buffered_body(req)
        ours = early_refusals.environ_for(req, PEER, LISTENER, body)
        _resp, theirs = gunicorn_wsgi.create(req, server, PEER, LISTENER, cfg)
    assert theirs["wsgi.url_scheme"] == "https" and theirs["HTTP_X_FORWARDED_FOR"] == "10.1.1.1,10.2.2.2"
    assert ours["wsgi.input"].getvalue() == body == b'{"product_id": %d}' % product.pk
    # What the body gate hands on (the fast path's view): the true length of the body read.
    theirs["CONTENT_LENGTH"] = str(len(body))
    kept = {key for key in theirs if not key.startswith(("wsgi.", "gunicorn."))} | {"wsgi.url_scheme"}
    assert {key: ours[key] for key in kept} == {key: theirs[key] for key in kept}
    assert set(ours) - kept == {"wsgi.input"}


def test_a_body_still_arriving_is_left_to_the_body_gate():
    client, server = socket.socketpair()
    with client, server:
        client.sendall(b"POST /api/orders/ HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n{\"prod")
        req = next(gunicorn_worker.ShopRequestParser(Config(), server, PEER))
        assert early_refusals.buffered_body(req) is None
        client.sendall(b'uct_id": 1}')
        assert req.body.read(17) == b'{"product_id": 1}'  # nothing was taken


def test_a_body_looked_at_is_taken_only_when_answered():
    client, server = socket.socketpair()
    with client, server:
        client.sendall(b'POST /api/orders/ HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n{"product_id": 1}GET')
        req = next(gunicorn_worker.ShopRequestParser(Config(), server, PEER))
        body = early_refusals.buffered_body(req)
        assert body == b'{"product_id": 1}' and early_refusals.buffered_body(req) == body
        early_refusals.take_body(req, body)
        assert req.body.read(10) == b"" and req.body.reader.unreader.read() == b"GET"
    assert isinstance(req.body, Body) and isinstance(req.body.reader, LengthReader)


@pytest.mark.parametrize(("setting", "value"), [
    ("accesslog", "-"), ("logconfig_dict", {"version": 1}), ("loglevel", "debug"), ("syslog", True),
    ("pre_request", lambda worker, req: None), ("post_request", lambda worker, req, environ, resp: None),
    ("statsd_host", "127.0.0.1:8125"), ("proxy_protocol", "v1"),
])
def test_off_when_gunicorn_is_asked_to_see_each_request(setting, value):
    cfg = Config()
    cfg.set(setting, value)
    assert early_refusals.answerer(_application(), cfg, Logger(cfg)) is None
    plain = Config()
    assert early_refusals.answerer(_application(), plain, Logger(plain)) is not None


def test_off_with_a_logger_class_of_ones_own():
    class Own(Logger):
        pass

    cfg = Config()
    assert early_refusals.answerer(_application(), cfg, Own(cfg)) is None


def test_off_with_the_switch(sold_out_sale, settings):
    product, token = sold_out_sale
    settings.EARLY_REFUSALS = False
    early = Worker()
    assert statuses(early.exchange(purchase_bytes(token, product.pk))) == [409] and early.ways == [None]


@pytest.mark.parametrize(("proxy_header", "meta", "scheme"), [
    (None, {}, "http"), (None, {}, "https"),
    (("HTTP_X_FORWARDED_PROTO", "https"), {"HTTP_X_FORWARDED_PROTO": "https"}, "http"),
    (("HTTP_X_FORWARDED_PROTO", "https"), {"HTTP_X_FORWARDED_PROTO": "http, https"}, "https"),
    (("HTTP_X_FORWARDED_PROTO", "https"), {"HTTP_X_FORWARDED_PROTO": " https ,http"}, "http"),
    (("HTTP_X_FORWARDED_PROTO", "https"), {}, "https"),
])
def test_secure_is_djangos_reading(settings, proxy_header, meta, scheme):
    from django.core.handlers.wsgi import WSGIRequest

    settings.SECURE_PROXY_SSL_HEADER = proxy_header
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/orders/", "wsgi.input": io.BytesIO(),
               "wsgi.url_scheme": scheme, **meta}
    assert fast_path._is_secure(environ) is WSGIRequest(environ).is_secure()


def test_the_mark_refuses_as_the_pre_check_would(make_user, make_product):
    shopper = make_user()
    ended = make_product(stock=0, ends_in=timedelta(seconds=30))
    for product in (ended,):
        with pytest.raises(SoldOut) as usual:
            purchase(user=shopper, product_id=product.pk)
        assert known_refusal(product_id=product.pk, quantity=1).code == usual.value.code == "sold_out"
    sold_out._marks[ended.pk] = (sold_out._marks[ended.pk][0],
                                 {**sold_out._marks[ended.pk][1], "sale_ends_at": timezone.now() - timedelta(seconds=1)})
    assert known_refusal(product_id=ended.pk, quantity=1).code == "sale_ended"
    on_sale = make_product(stock=3)
    purchase(user=shopper, product_id=on_sale.pk)  # leaves an on-sale note, never a refusal
    assert known_refusal(product_id=on_sale.pk, quantity=1) is None
    assert known_refusal(product_id=10 ** 9, quantity=1) is None


def test_a_waiting_room_is_never_answered_from_the_mark(make_user, make_product):
    product = make_product(stock=0)
    with pytest.raises(SoldOut):
        purchase(user=make_user(), product_id=product.pk)
    facts = sold_out._marks[product.pk]
    sold_out._marks[product.pk] = (facts[0], {**facts[1], "waiting_room": True})
    assert known_refusal(product_id=product.pk, quantity=1) is None


def test_the_worker_module_loads_for_an_application_without_django_settings():
    """The worker class also serves stress.bare_view (make bench's floor), where no Django
    settings exist: gevent's patching walks every object, and an unconfigured LazySettings
    imported at module level made the worker fail to boot."""
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-c", "import flashsale.gunicorn_worker\n"
                           "from gevent import monkey\nmonkey.patch_all()\nprint('booted')"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "booted", done.stderr
