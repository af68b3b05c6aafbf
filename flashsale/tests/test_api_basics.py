"""Token login, health, the OpenAPI schema and docs."""

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.authtoken.models import Token

from tests.servers import scratch_redis


def test_token_login(client_for, make_user):
    user = make_user("tokenuser", password="right-pass-123")
    response = client_for(None).post("/api/auth/token/", {"username": "tokenuser", "password": "right-pass-123"},
                                     format="json")
    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=user).key}
    wrong = client_for(None).post("/api/auth/token/", {"username": "tokenuser", "password": "nope"}, format="json")
    assert wrong.status_code == 400 and wrong.json()["code"] == "invalid"
    missing = client_for(None).post("/api/auth/token/", {"username": "tokenuser"}, format="json")
    assert missing.status_code == 400 and "password" in missing.json()["errors"]


def test_token_login_is_rate_limited_per_ip(client_for, make_user, settings):
    settings.RATE_LIMIT_LOGIN_IP = "3/m"
    make_user("victim", password="right-pass-123")
    codes = [
        client_for(None).post("/api/auth/token/", {"username": "victim", "password": f"guess{n}"}, format="json")
        for n in range(4)
    ]
    assert [r.status_code for r in codes] == [400, 400, 400, 429]
    assert codes[-1].json()["code"] == "rate_limited" and int(codes[-1]["Retry-After"]) >= 1


def test_health_is_ok_with_both_up(client_for, db):
    response = client_for(None).get("/api/health/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["status"] == "up" and body["database"]["latency_ms"] >= 0
    assert body["redis"]["status"] == "up" and body["redis"]["latency_ms"] >= 0


def test_schema_and_offline_docs(client_for, db):
    schema = client_for(None).get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    for path in ["/api/orders/", "/api/products/{id}/stock/", "/api/auth/token/", "/api/health/"]:
        assert path in text
    docs = client_for(None).get("/api/docs/")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/" in page and "cdn" not in page.lower()
    asset = client_for(None).get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200


def test_schema_generates_without_warnings():
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


@pytest.mark.django_db(transaction=True)
def test_redis_down_purchases_go_on_unlimited_and_limits_return(make_product, make_user, client_for, settings, buy):
    """Stop a real Redis: health says degraded, purchases still work without limits, then limits come back."""
    settings.RATE_LIMIT_PURCHASE_USER = "1/m"
    settings.RATE_LIMIT_PURCHASE_IP = None
    product = make_product(stock=20)
    shopper = make_user()
    client = client_for(shopper)

    def buy_one():
        return buy(client, product.pk).status_code

    with scratch_redis() as redis_server:
        caches = {"default": {**settings.CACHES["default"], "LOCATION": redis_server.url}}
        with override_settings(CACHES=caches):
            assert [buy_one(), buy_one()] == [201, 429]
            redis_server.stop()
            assert client.get("/api/health/").json()["status"] == "degraded"
            assert client.get("/api/health/").status_code == 200
            assert [buy_one(), buy_one(), buy_one()] == [201, 201, 201]  # fail open: the database still guards stock
            redis_server.start()
            assert client.get("/api/health/").json()["status"] == "ok"
            assert [buy_one(), buy_one()] == [201, 429]
            cache.clear()
    product.refresh_from_db()
    assert product.stock == 20 - 5
