"""With the database unreachable, the API answers 503 `unavailable` JSON, never a 500."""

import httpx
import pytest

from tests.servers import free_port, running_app

pytestmark = pytest.mark.django_db(transaction=True)


def test_api_answers_503_unavailable_when_the_database_is_unreachable():
    nowhere = f"postgres://postgres@127.0.0.1:{free_port()}/flashsale"  # nothing listens there
    with running_app(env={"DATABASE_URL": nowhere, "DB_CONNECT_TIMEOUT": "1"}, workers=1) as base:
        for method, path, body in [
            ("GET", "/api/products/", None),
            ("GET", "/api/products/1/stock/", None),
            ("POST", "/api/auth/token/", {"username": "a", "password": "b"}),
        ]:
            response = httpx.request(method, base + path, json=body, timeout=10)
            assert response.status_code == 503, (path, response.text)
            assert response.headers["content-type"].startswith("application/json")
            assert response.json()["code"] == "unavailable"
            assert int(response.headers["Retry-After"]) >= 1
        health = httpx.get(base + "/api/health/", timeout=10)
        assert health.status_code == 503
        assert health.json()["status"] == "down"
        assert health.json()["database"]["status"] == "down"
