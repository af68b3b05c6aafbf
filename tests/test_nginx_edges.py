"""The shipped nginx config (deploy/nginx/flashsale.conf) in front of a real gunicorn, spoken to raw.

Debian's nginx runs the shipped server block; only what ties it to Docker changes (the
resolver, the upstream's DNS name, the listen port), and the two client timeouts shrink
from 10 s to 2 s so the test does not wait them out. nginx's refusals must be the
contract's JSON, a slow client must end in bounded time, and a chunked body must reach the
app whole.
"""

import json
import re
from contextlib import contextmanager

import pytest

from orders.models import Order
from products.models import Product
from tests.faults import token_for
from tests.servers import ROOT, nginx_serving, running_app
from tests.test_http_edges import (
    Conn,
    _chunked,
    _post,
    _refusal,
    read_and_buy_while_stalled,
)

pytestmark = [pytest.mark.slow]


def shipped_config(upstream: str, port: int, *, client_timeout: str) -> str:
    text = (ROOT / "deploy" / "nginx" / "flashsale.conf").read_text()
    text = re.sub(r"^resolver .*$", "", text, flags=re.MULTILINE)
    text = text.replace("zone flashsale_web 64k;", "").replace("server web:8000 resolve;", f"server {upstream};")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{port};")
    for name in ("client_header_timeout", "client_body_timeout"):
        text, count = re.subn(rf"{name} \S+;", f"{name} {client_timeout};", text)
        assert count == 1, name
    return text


@contextmanager
def shipped_nginx_in_front_of(base: str, *, client_timeout: str = "2s"):
    upstream = base.removeprefix("http://")

    def http_body(port):
        return shipped_config(upstream, port, client_timeout=client_timeout)

    with nginx_serving(http_body, prefix="fs-nginx-edges-") as front:
        yield front


@pytest.fixture(scope="module")
def front(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), running_app(workers=1) as base, shipped_nginx_in_front_of(base) as front:
        yield front


@pytest.fixture
def sale(make_user, make_product):
    return make_product(stock=10), token_for(make_user())


def _unchanged(product) -> None:
    assert Product.objects.get(pk=product.pk).stock == 10
    assert not Order.objects.filter(product_id=product.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_nginx_closes_a_connection_whose_headers_do_not_arrive(front, sale):
    product, _token = sale
    conn = Conn(front)
    conn.send(b"GET /api/products/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and nothing more
    assert conn.closed_by_server()
    assert conn.buf == b""  # nginx ends a header timeout without an answer (it logs 408)
    _unchanged(product)


@pytest.mark.django_db(transaction=True)
def test_nginx_closes_a_connection_whose_body_does_not_arrive(front, sale):
    """nginx reads the whole body before it goes upstream: gunicorn never sees this request."""
    product, token = sale
    conn = Conn(front)
    conn.send(_post("/api/orders/", b"", token=token, length=100))
    assert conn.closed_by_server()
    assert conn.buf == b""  # nginx ends a body timeout without an answer (it logs 408)
    _unchanged(product)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("request_bytes, status", [
    pytest.param(b"GET /api/products/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
                 400, id="header-too-large"),
    pytest.param(b"GET /api/products/?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                 414, id="request-line-too-long"),
    pytest.param(b"POST /api/orders/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, id="content-length-and-chunked"),
    pytest.param(b"POST /api/orders/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 300000\r\n\r\n", 413, id="body-too-large"),
    pytest.param(b"GARBAGE\r\n\r\n", 400, id="no-request-line"),
])
def test_nginx_refusals_are_json(front, sale, request_bytes, status):
    product, _token = sale
    conn = Conn(front)
    conn.send(request_bytes)
    _refusal(conn.answer(), status)
    _unchanged(product)


@pytest.mark.django_db(transaction=True)
def test_a_chunked_purchase_through_nginx_is_made_once(front, sale):
    product, token = sale
    order = json.dumps({"product_id": product.pk, "quantity": 3}).encode()
    conn = Conn(front)
    conn.send(_post("/api/orders/", _chunked(order), token=token, extra="Transfer-Encoding: chunked\r\n"))
    answer = conn.answer()
    assert answer.status == 201 and answer.json()["remaining_stock"] == 7
    assert Product.objects.get(pk=product.pk).stock == 7
    assert Order.objects.filter(product_id=product.pk).count() == 1


@pytest.mark.django_db(transaction=True)
def test_100_stalled_connections_through_nginx_do_not_stop_a_read_and_a_purchase(make_user, make_product):
    """The headline through the shipped nginx (10-second timeouts): nginx holds the stalls."""
    product = make_product(stock=10)
    with running_app(workers=1) as base, shipped_nginx_in_front_of(base, client_timeout="10s") as front:
        stalls = read_and_buy_while_stalled(front, token_for(make_user()), token_for(make_user()), product)
    # nginx ends both timeouts by closing the connection, without an answer.
    assert stalls.endings() == ([("closed",)] * 50, [("closed",)] * 50)
