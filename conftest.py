"""Fixtures shared by every app's tests: real PostgreSQL, real Redis, small factories.

One fixture per recurring setup: `make_user`, `make_product`, `client_for` (a token
client), `buy` (a purchase through the API), `row_locked_elsewhere` (another session
holding a product's row lock). Staff pages use pytest-django's own `admin_client`.
"""

import itertools
import os
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from flashsale import embedded
from products.services import create_product
from tests import concurrency

_names = itertools.count(1)


def pytest_configure(config):
    """pytest's entry point for a checkout: the settings only named the embedded servers; start them."""
    embedded.provide()


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters live in Redis across tests; start each test with none."""
    cache.delete_pattern("*")
    yield


class _StoppedClock:
    """`time` as django-ratelimit reads it (time.time() only), held at one instant."""

    def __init__(self, now: float):
        self._now = now

    def time(self) -> float:
        return self._now


@pytest.fixture(autouse=True)
def _rate_windows_stand_still(monkeypatch):
    """django-ratelimit counts in fixed windows whose edges fall at a second set by the key
    (a shopper, an address, a username): a test's few requests that straddled an edge were
    counted in two windows and a limit it expected was not reached (seen: "2/m" letting a
    third login through). Within a test, the window stays the one it started in."""
    import time

    import django_ratelimit.core

    monkeypatch.setattr(django_ratelimit.core, "time", _StoppedClock(time.time()))


@pytest.fixture
def no_rate_limits(settings):
    settings.RATE_LIMIT_PURCHASE_USER = None
    settings.RATE_LIMIT_PURCHASE_IP = None
    settings.RATE_LIMIT_LOGIN_IP = None
    settings.RATE_LIMIT_LOGIN_USER = None


@pytest.fixture
def make_user(db):
    def make(username=None, *, staff=False, password="pass-word-123"):
        username = username or f"user{next(_names)}"
        user = get_user_model().objects.create_user(username=username, password=password, is_staff=staff)
        return user

    return make


@pytest.fixture
def make_product(db):
    def make(*, stock=10, price="9.99", max_per_user=None, starts_in=None, ends_in=timedelta(days=1), **fields):
        now = timezone.now()
        return create_product(
            name=fields.pop("name", f"Product {next(_names)}"),
            price=Decimal(price),
            stock=stock,
            max_per_user=max_per_user,
            sale_starts_at=now + starts_in if starts_in is not None else now - timedelta(hours=1),
            sale_ends_at=now + ends_in if ends_in is not None else None,
            **fields,
        )

    return make


@pytest.fixture
def client_for():
    """An API client authenticated with the user's token (anonymous for None)."""

    def make(user=None):
        client = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture
def buy():
    """`buy(client, product_id, quantity=None, **headers)`: POST /api/orders/ and return the response."""

    def post(client, product_id, quantity=None, **headers):
        body = {"product_id": product_id} if quantity is None else {"product_id": product_id, "quantity": quantity}
        return client.post("/api/orders/", body, format="json", headers=headers)

    return post


@pytest.fixture
def row_locked_elsewhere():
    """`with row_locked_elsewhere(product_id) as held:` another session holds the product's row lock.

    Like a stuck admin transaction or a slow restock: a session of its own (not Django's),
    so the test needs `django_db(transaction=True)`; `held.release()` ends it early.
    """
    return concurrency.row_locked_elsewhere


@pytest.fixture
def shopper(make_user):
    return make_user()


@pytest.fixture
def staff(make_user):
    return make_user(staff=True)


@pytest.fixture(scope="session", autouse=True)
def _no_sessions_left_at_teardown(django_db_setup, django_db_blocker):
    """Killed server processes leave backends that take a moment to exit; end them so the
    test database can be dropped (its teardown runs right after this fixture's)."""
    yield

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def live(monkeypatch):
    """A real gunicorn (two workers) on the test database, for the browser tests (tests/browser.py)."""
    from tests.browser import require_chromium
    from tests.servers import running_app

    require_chromium()
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with running_app(workers=2) as base:
        yield base


@pytest.fixture
def shots(tmp_path):
    """Where a browser test saves its screenshots: docs/screenshots/ with SAVE_SCREENSHOTS=1."""
    from tests.browser import SCREENSHOTS

    return SCREENSHOTS if os.environ.get("SAVE_SCREENSHOTS") == "1" else tmp_path


@pytest.fixture
def redis_writes(monkeypatch):
    """Every write put on a redis-py connection from here on, recorded (and sent)."""
    from redis.connection import AbstractConnection

    sent = []
    real_send = AbstractConnection.send_packed_command

    def counting_send(self, command, *args, **kwargs):
        sent.append(command)
        return real_send(self, command, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting_send)
    return sent
