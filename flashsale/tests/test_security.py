"""Security: production settings, brute force, "not yours" everywhere, no secrets in git, the schema."""

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.urls import Resolver404, resolve

from orders.models import Order, OrderStatus
from orders.services import purchase
from tests.servers import ROOT, database_url, redis_url, running_app

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "flashsale.settings.production",
    "SECRET_KEY": "prod-test-not-secret-" + "x7Qp2LrVb9WmZt4KcYn8HsJd6FgAe3Ui5Ol1" * 2,
    "DATABASE_URL": "postgres://flashsale@127.0.0.1:5432/flashsale",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "ALLOWED_HOSTS": "shop.example.com",
}


def _production(*args: str) -> subprocess.CompletedProcess:
    import os

    env = {key: value for key, value in os.environ.items() if key not in PRODUCTION_ENV}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env={**env, **PRODUCTION_ENV},
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_under_production_settings():
    result = _production("manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_harden_cookies_and_transport():
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({k: getattr(s, k) for k in ['DEBUG', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
        "'SESSION_COOKIE_HTTPONLY', 'SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', 'SECURE_PROXY_SSL_HEADER']}))"
    )
    result = _production("-c", code)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "DEBUG": False, "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SESSION_COOKIE_HTTPONLY": True,
        "SECURE_SSL_REDIRECT": True, "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    }


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL", "REDIS_URL"])
def test_production_refuses_to_start_without_its_secrets(missing):
    code = "import django; django.setup()"
    import os

    env = {key: value for key, value in os.environ.items() if key not in PRODUCTION_ENV}
    env.update({k: v for k, v in PRODUCTION_ENV.items() if k != missing})
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_behind_a_tls_proxy_production_redirects_http_and_sends_hsts():
    env = {key: PRODUCTION_ENV[key] for key in ("DJANGO_SETTINGS_MODULE", "SECRET_KEY")}
    env.update({"DATABASE_URL": database_url(), "REDIS_URL": redis_url(), "ALLOWED_HOSTS": "127.0.0.1"})
    with running_app(env=env, workers=1) as base:
        plain = httpx.get(f"{base}/api/products/")
        proxied = httpx.get(f"{base}/api/products/", headers={"X-Forwarded-Proto": "https"})
        probe = httpx.get(f"{base}/api/health/")
    assert plain.status_code == 301 and plain.headers["location"].startswith("https://")
    assert proxied.status_code == 200
    assert proxied.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
    assert proxied.headers["x-content-type-options"] == "nosniff"
    assert probe.status_code == 200  # the in-cluster health probe is exempt from the redirect


@pytest.mark.django_db
def test_session_and_csrf_cookies_are_secure_with_production_values(client, settings, staff):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    form = client.get("/admin/login/")  # sets the CSRF cookie
    login = client.post("/admin/login/?next=/admin/", {"username": staff.username, "password": "pass-word-123"})
    assert login.status_code == 302
    assert login.cookies["sessionid"]["secure"] and login.cookies["sessionid"]["httponly"]
    assert form.cookies["csrftoken"]["secure"]


@pytest.mark.django_db
def test_token_login_brute_force_is_limited_per_address(client_for, make_user, settings):
    settings.RATE_LIMIT_LOGIN_IP = "3/m"
    make_user("victim", password="test-horse-battery")
    client = client_for(None)
    wrong = [client.post("/api/auth/token/", {"username": "victim", "password": f"guess{i}"}, format="json")
             for i in range(3)]
    blocked = client.post("/api/auth/token/", {"username": "victim", "password": "test-horse-battery"},
                          format="json")
    elsewhere = client.post("/api/auth/token/", {"username": "victim", "password": "test-horse-battery"},
                            format="json", REMOTE_ADDR="10.9.8.7")
    assert [r.status_code for r in wrong] == [400, 400, 400]
    assert blocked.status_code == 429 and blocked.json()["code"] == "rate_limited"
    assert int(blocked["Retry-After"]) >= 1
    assert elsewhere.status_code == 200  # another address is not locked out by the attacker


@pytest.mark.django_db
def test_a_spoofed_forwarded_for_changes_nothing_by_default(client_for, settings):
    """TRUSTED_PROXIES defaults to 0: X-Forwarded-For is ignored, the socket address counts."""
    assert settings.TRUSTED_PROXIES == 0
    settings.RATE_LIMIT_LOGIN_IP = "2/m"
    client = client_for(None)
    answers = [
        client.post("/api/auth/token/", {"username": "nobody", "password": "x"}, format="json",
                    HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code
        for i in range(3)
    ]
    assert answers == [400, 400, 429]


# "Not yours".

@pytest.fixture
def strangers_order(make_user, make_product, no_rate_limits):
    owner = make_user()
    return purchase(user=owner, product_id=make_product(stock=5).pk).order


@pytest.mark.django_db
def test_another_shoppers_order_is_not_found_to_read_or_cancel(client_for, shopper, strangers_order):
    client = client_for(shopper)
    read = client.get(f"/api/orders/{strangers_order.pk}/")
    cancel = client.post(f"/api/orders/{strangers_order.pk}/cancel/")
    listing = client.get("/api/orders/", {"user": strangers_order.user.username})
    assert (read.status_code, read.json()["code"]) == (404, "not_found")
    assert (cancel.status_code, cancel.json()["code"]) == (404, "not_found")
    assert listing.json()["count"] == 0  # staff filters do nothing for a shopper
    assert Order.objects.get(pk=strangers_order.pk).status == OrderStatus.CONFIRMED


def _staff_calls(product_id: int) -> list[tuple[str, str, dict | None]]:
    return [
        ("post", "/api/products/", {"name": "Nope", "price": "1.00", "stock": 1}),
        ("patch", f"/api/products/{product_id}/", {"name": "Hijacked"}),
        ("post", f"/api/products/{product_id}/restock/", {"quantity": 5}),
    ]


def _stats_exists() -> bool:
    try:
        resolve("/api/stats/")
        return True
    except Resolver404:
        return False


@pytest.mark.django_db
def test_a_shopper_gets_403_on_every_staff_endpoint(client_for, shopper, strangers_order):
    client = client_for(shopper)
    product = strangers_order.product
    calls = _staff_calls(product.pk)
    if _stats_exists():
        calls.append(("get", "/api/stats/", None))
    for method, path, body in calls:
        response = getattr(client, method)(path, body, format="json")
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied"), path
    product.refresh_from_db()
    assert product.name != "Hijacked" and product.stock == 4


@pytest.mark.django_db
def test_anonymous_gets_401_wherever_a_login_is_needed(client_for, strangers_order):
    client = client_for(None)
    product_id, order_id = strangers_order.product_id, strangers_order.pk
    calls = [
        ("get", "/api/orders/", None),
        ("post", "/api/orders/", {"product_id": product_id}),
        ("get", f"/api/orders/{order_id}/", None),
        ("post", f"/api/orders/{order_id}/cancel/", None),
        *_staff_calls(product_id),
    ]
    for method, path, body in calls:
        response = getattr(client, method)(path, body, format="json")
        assert (response.status_code, response.json()["code"]) == (401, "not_authenticated"), path
        assert response.has_header("WWW-Authenticate")


@pytest.mark.django_db
def test_a_bad_token_is_401_not_anonymous_access(client):
    response = client.get("/api/products/", HTTP_AUTHORIZATION="Token not-a-real-token")
    assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/admin/", "/admin/orders/order/", "/admin/products/product/", "/dashboard/"])
def test_shoppers_and_anonymous_get_no_staff_pages(client, shopper, path):
    resolve(path)  # a staff page that is not routed fails here, it is not skipped
    anonymous = client.get(path)
    client.force_login(shopper)
    as_shopper = client.get(path)
    for response in (anonymous, as_shopper):
        assert response.status_code in (302, 403), (path, response.status_code)
        if response.status_code == 302:
            assert "login" in response["Location"]


# The repository and the published schema.

SECRET_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"AKIA[0-9A-Z]{16}"),
    re.compile("django-" + "insecure-"),  # split so this file does not match itself
    re.compile(r"gh[pousr]_[A-Za-z0-9]{36}"),
    re.compile(r"xox[baprs]-[A-Za-z0-9-]{10,}"),
]
ASSIGNED_SECRET = re.compile(r"(SECRET_KEY|PASSWORD|TOKEN)[\"']?\s*[:=]\s*[\"']([^\"'\s]{8,})[\"']", re.IGNORECASE)
PLACEHOLDER = re.compile(r"not-secret|replace|change-?me|example|\$\{|\{\{|test|demo|loadtest|pass-word", re.I)


def _tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / name for name in listed.stdout.split("\0") if name]


def test_no_secret_is_committed():
    found = []
    for path in _tracked_files():
        if path.name == ".env" or path.suffix in {".pem", ".key"}:
            found.append(f"{path}: secret-looking file")
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        is_test_module = "tests" in path.relative_to(ROOT).parts or path.name.startswith("test_")
        for pattern in SECRET_PATTERNS:
            if pattern.search(text):
                found.append(f"{path}: {pattern.pattern}")
        # Credentials that tests make up for their own throwaway users are fixtures, not secrets.
        for match in [] if is_test_module else ASSIGNED_SECRET.finditer(text):
            if not PLACEHOLDER.search(match.group(2)):
                found.append(f"{path}: {match.group(0)}")
    assert not found, found


@pytest.mark.django_db
def test_the_public_schema_shows_the_contracts_api_and_nothing_internal(client):
    """Deliberately public: contract section 4 publishes every endpoint, staff ones included,
    so the schema tells an anonymous reader nothing more; permissions, not obscurity, guard
    them (tested above). What must not appear: internals the contract does not publish."""
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    paths = set(schema["paths"])
    assert all(path.startswith("/api/") for path in paths)
    assert not {p for p in paths if "lab" in p or "metrics" in p or "admin" in p}
    text = json.dumps(schema)
    for internal in ("units_received", "request_hash", "idempotency_key\"", "password_hash"):
        assert internal not in text, internal
    restock = schema["paths"]["/api/products/{id}/restock/"]["post"]
    assert "403" in restock["responses"] and "401" in restock["responses"]
