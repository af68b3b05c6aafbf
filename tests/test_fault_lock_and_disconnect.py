"""Faults around the row lock, over real HTTP: a lock held too long, and clients that hang up.

Found (see docs/failure-modes.md): a buyer who cannot get the row lock
within LOCK_TIMEOUT_MS gets 503 `busy` with Retry-After and nothing changes; a client that
hangs up while its purchase waits on the lock does not stop the purchase (gunicorn's sync
worker finishes it), so the order is fully there and a retry with the same
Idempotency-Key gets it back; a client that hangs up mid-body makes nothing at all.
"""

import socket

import httpx
import pytest

from orders.models import Order
from tests.faults import backends, buy, token_for
from tests.invariants import assert_stock_reconciles
from tests.servers import running_app, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_lock_held_past_lock_timeout_answers_busy_and_changes_nothing(make_user, make_product, row_locked_elsewhere):
    product = make_product(stock=5)
    tokens = [token_for(make_user()) for _ in range(3)]
    with running_app(env={"LOCK_TIMEOUT_MS": "200"}, workers=2) as base:
        with row_locked_elsewhere(product.pk):  # an admin transaction, a slow restock… anything
            answers = []
            for token in tokens:
                status, code, _type = buy(base, token, product.pk)
                answers.append((status, code))
        after = buy(base, tokens[0], product.pk)
        with row_locked_elsewhere(product.pk):
            retry_after = _busy_retry_after(base, tokens[1], product.pk)
    assert answers == [(503, "busy")] * 3
    assert after[:2] == (201, None)
    assert int(retry_after) >= 1
    product.refresh_from_db()
    assert product.stock == 4 and Order.objects.count() == 1
    assert_stock_reconciles(product.pk)


def _busy_retry_after(base, token, product_id):
    """One more busy answer (the row being locked elsewhere), read raw for its Retry-After header."""
    response = httpx.post(f"{base}/api/orders/", json={"product_id": product_id},
                          headers={"Authorization": f"Token {token}"}, timeout=30)
    assert response.status_code == 503 and response.json()["code"] == "busy"
    assert response.headers["content-type"].startswith("application/json")
    return response.headers["Retry-After"]


def _raw_post(port: int, token: str, body: bytes, *, declared_length: int | None = None,
              key: str = "") -> socket.socket:
    """A purchase over a bare socket, so the test can hang up whenever it likes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (
        f"POST /api/orders/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {declared_length or len(body)}\r\n"
        + (f"Idempotency-Key: {key}\r\n" if key else "")
        + "\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def test_a_client_that_hangs_up_while_waiting_for_the_lock_gets_its_order_whole(make_user, make_product,
                                                                                row_locked_elsewhere):
    product = make_product(stock=3)
    shopper = make_user()
    token = token_for(shopper)
    with running_app(env={"LOCK_TIMEOUT_MS": "30000"}, workers=1) as base:
        port = int(base.rsplit(":", 1)[1])
        with row_locked_elsewhere(product.pk):
            body = f'{{"product_id": {product.pk}}}'.encode()
            sock = _raw_post(port, token, body, key="hang-up-1")
            wait_until(lambda: backends("wait_event_type = 'Lock'"), what="the purchase to queue on the lock")
            sock.close()  # the client gives up while the server waits for the lock
        wait_until(Order.objects.filter(product=product).exists, what="the abandoned purchase to finish")
        retry = buy(base, token, product.pk, key="hang-up-1")
    orders = list(Order.objects.filter(product=product))
    product.refresh_from_db()
    assert len(orders) == 1 and orders[0].user_id == shopper.pk
    assert product.stock == 2  # fully there: the stock went with the order
    assert retry[:2] == (201, None)  # the retry sees the same order, not a second one
    assert Order.objects.count() == 1
    assert_stock_reconciles(product.pk)


def test_a_client_that_hangs_up_mid_body_makes_nothing(make_user, make_product):
    product = make_product(stock=3)
    token = token_for(make_user())
    with running_app(workers=1) as base:
        port = int(base.rsplit(":", 1)[1])
        full = f'{{"product_id": {product.pk}, "quantity": 1}}'.encode()
        sock = _raw_post(port, token, full[:10], declared_length=len(full))
        sock.close()
        # One worker handles one request at a time: once this answers, the torn one is done.
        assert buy(base, token, product.pk, quantity=2)[0] == 201
    product.refresh_from_db()
    assert product.stock == 1
    assert list(Order.objects.values_list("quantity", flat=True)) == [2]
    assert_stock_reconciles(product.pk)
