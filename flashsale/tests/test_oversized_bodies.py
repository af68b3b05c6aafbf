"""Oversized bodies are refused from their Content-Length, before being read: 413 `invalid` JSON."""

import json
import socket

import pytest

from tests.faults import token_for
from tests.servers import running_app

BIG = 256 * 1024 + 1


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/auth/token/", "/api/orders/", "/api/products/"])
def test_an_oversized_body_is_413_invalid_json(client_for, staff, path):
    body = '{"name": "' + "a" * BIG + '"}'
    response = client_for(staff).generic("POST", path, body, content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "invalid"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_gunicorn_refuses_a_huge_declared_body_without_waiting_for_it(make_user, make_product):
    product = make_product(stock=1)
    token = token_for(make_user())
    with running_app(workers=1) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            # Declares 1 GiB and sends none of it: the answer must come from the header alone.
            sock.sendall(
                f"POST /api/orders/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {2**30}\r\n\r\n".encode()
            )
            answer = _read_until_closed(sock)
    assert answer.startswith("HTTP/1.1 413")
    head, _, body = answer.partition("\r\n\r\n")
    assert "application/json" in head
    assert json.loads(body)["code"] == "invalid"
    product.refresh_from_db()
    assert product.stock == 1


def _read_until_closed(sock: socket.socket) -> str:
    chunks = []
    while chunk := sock.recv(65536):  # the server closes after refusing the body it did not read
        chunks.append(chunk)
    return b"".join(chunks).decode("latin-1")
