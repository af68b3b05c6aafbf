"""flashsale.gunicorn_worker.CoalescingResponse: the head goes out with the first body bytes.

Driven through gunicorn's own parser and WSGI glue on a real socket pair; the server side
counts its sends.
"""

import socket

import pytest
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser

from flashsale.gunicorn_worker import CoalescingResponse, _send_whole, http_date


class CountingSocket:
    def __init__(self, sock):
        self.sock, self.sends = sock, 0

    def sendall(self, data):
        self.sends += 1
        self.sock.sendall(data)

    def send(self, data):
        self.sends += 1
        return self.sock.send(data)

    def __getattr__(self, name):
        return getattr(self.sock, name)


def serve_one(request: bytes, app):
    """(bytes the client received, sends the server made) for one request answered by `app`."""
    server, client = socket.socketpair()
    with server, client:
        client.sendall(request)
        client.shutdown(socket.SHUT_WR)
        cfg = Config()
        req = next(RequestParser(cfg, server, ("127.0.0.1", 1)))
        counted = CountingSocket(server)
        resp = CoalescingResponse(req, counted, cfg)
        resp.force_close()
        for chunk in app(resp.start_response):
            resp.write(chunk)
        resp.close()
        server.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := client.recv(65536):
            received += chunk
        return received, counted.sends, resp


def one_chunk(start_response):
    start_response("409 Conflict", [("Content-Type", "application/json"), ("Content-Length", "19")])
    return [b'{"code":"sold_out"}']


def test_a_one_chunk_answer_is_one_send_with_head_and_body():
    received, sends, resp = serve_one(b"POST /api/orders/ HTTP/1.1\r\nHost: x\r\n\r\n", one_chunk)
    head, _, body = received.partition(b"\r\n\r\n")
    assert sends == 1 and resp.headers_sent
    assert head.startswith(b"HTTP/1.1 409 Conflict\r\n") and b"Content-Length: 19" in head
    assert body == b'{"code":"sold_out"}'


def test_an_answer_without_a_body_still_sends_its_head():
    def no_body(start_response):
        start_response("204 No Content", [])
        return []

    received, sends, _ = serve_one(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", no_body)
    assert sends == 1 and received.startswith(b"HTTP/1.1 204 No Content\r\n") and received.endswith(b"\r\n\r\n")


def test_a_head_request_gets_the_head_only():
    received, _, _ = serve_one(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", one_chunk)
    assert received.startswith(b"HTTP/1.1 409 Conflict\r\n") and received.endswith(b"\r\n\r\n")


@pytest.mark.parametrize("chunks", [[b"ab", b"cd", b"ef"], [b"", b"abcdef"]])
def test_a_streamed_answer_arrives_whole_and_in_order(chunks):
    def streamed(start_response):
        start_response("200 OK", [("Content-Length", "6")])
        return chunks

    received, _, _ = serve_one(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", streamed)
    assert received.split(b"\r\n\r\n", 1)[1] == b"abcdef"


def test_a_chunked_answer_keeps_its_framing():
    def chunked(start_response):
        start_response("200 OK", [])
        return [b"abc", b"def"]

    received, _, _ = serve_one(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", chunked)
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"


def test_an_answer_larger_than_the_socket_buffer_arrives_whole():
    """The head and body go in one `send`; what the kernel did not take follows by sendall."""
    import threading

    body = bytes(range(256)) * 8192  # 2 MiB
    server, client = socket.socketpair()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    received = bytearray()
    reader = threading.Thread(target=lambda: [received.extend(c) for c in iter(lambda: client.recv(65536), b"")])
    with server, client:
        reader.start()
        _send_whole(server, b"HEAD\r\n\r\n" + body)
        server.shutdown(socket.SHUT_WR)
        reader.join(timeout=30)
    assert bytes(received) == b"HEAD\r\n\r\n" + body


def test_the_date_header_is_the_current_second_formatted_as_gunicorn_does():
    import time
    from email.utils import formatdate

    before = int(time.time())
    text = http_date()
    after = int(time.time())
    assert text in {formatdate(second, usegmt=True) for second in range(before, after + 1)}
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
