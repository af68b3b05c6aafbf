"""flashsale.gunicorn_worker.ShopRequest keeps gunicorn's rule on who may set forwarding
headers while remembering its verdict per peer address."""

import socket

import pytest
from gunicorn.config import Config

from flashsale import gunicorn_worker
from flashsale.gunicorn_worker import ShopRequestParser


def scheme_seen(peer: str, cfg: Config) -> str:
    server, client = socket.socketpair()
    with server, client:
        client.sendall(b"GET /api/health/ HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\n\r\n")
        return next(ShopRequestParser(cfg, server, (peer, 4242))).scheme


@pytest.fixture
def cfg():
    gunicorn_worker._trusted_peers.clear()
    config = Config()
    config.set("forwarded_allow_ips", "10.0.0.1")
    return config


def test_only_the_allowed_proxy_may_say_https_and_the_verdict_holds_when_remembered(cfg):
    for _ in range(2):  # the second round is answered from the memo
        assert scheme_seen("10.0.0.1", cfg) == "https"
        assert scheme_seen("10.0.0.2", cfg) == "http"
    assert gunicorn_worker._trusted_peers == {(id(cfg), "10.0.0.1"): True, (id(cfg), "10.0.0.2"): False}


def test_other_settings_get_their_own_verdict(cfg):
    assert scheme_seen("10.0.0.2", cfg) == "http"
    other = Config()
    other.set("forwarded_allow_ips", "10.0.0.2")
    assert scheme_seen("10.0.0.2", other) == "https"


def _parsed(first_bytes: bytes):
    server, client = socket.socketpair()
    client.sendall(first_bytes)
    return server, client, next(ShopRequestParser(Config(), server, ("127.0.0.1", 4242)))


def test_a_body_that_came_with_its_head_is_known_to_be_in_memory():
    from flashsale.request_body import _already_received

    body = b'{"product_id": 1}'
    server, client, req = _parsed(b"POST /api/orders/ HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                                  % (len(body), body))
    with server, client:
        assert _already_received(req.body) == len(body)
        assert req.body.read(len(body)) == body


def test_a_body_still_on_the_way_is_read_under_the_deadline():
    from flashsale.request_body import _already_received

    server, client, req = _parsed(b"POST /api/orders/ HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n{\"prod")
    with server, client:
        assert _already_received(req.body) == 6  # fewer than announced: the deadline path
        client.sendall(b'uct_id": 1}')
        assert req.body.read(17) == b'{"product_id": 1}'


def test_a_chunked_body_is_never_taken_for_one_in_memory():
    from flashsale.request_body import _already_received

    server, client, req = _parsed(b"POST /api/orders/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  b"2\r\n{}\r\n0\r\n\r\n")
    with server, client:
        assert _already_received(req.body) == 0
