"""The locking prologue: LOCK_TIMEOUT_MS in force for every locking transaction, at no round trip."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from flashsale.db import locked_transaction, startup_lock_timeout_ms
from flashsale.settings.base import database_from_url


def _lock_timeout_inside(**kwargs) -> tuple[str, list[str]]:
    with CaptureQueriesContext(connection) as queries, locked_transaction():
        prologue = [q["sql"] for q in queries.captured_queries if q["sql"] != "BEGIN"]
        with connection.cursor() as cursor:
            cursor.execute("SHOW lock_timeout")
            (value,) = cursor.fetchone()
    return value, prologue


@pytest.mark.django_db(transaction=True)
def test_the_timeout_rides_on_the_connection_and_costs_no_statement(settings):
    assert startup_lock_timeout_ms() == settings.LOCK_TIMEOUT_MS
    value, prologue = _lock_timeout_inside()
    assert (value, prologue) == (f"{settings.LOCK_TIMEOUT_MS // 1000}s", [])


@pytest.mark.django_db(transaction=True)
def test_a_setting_that_differs_from_the_connection_is_set_for_the_transaction(settings):
    settings.LOCK_TIMEOUT_MS = 250
    value, prologue = _lock_timeout_inside()
    assert value == "250ms"
    assert len(prologue) == 1 and "lock_timeout" in prologue[0]
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] != "250ms"  # SET LOCAL: gone with the transaction


def test_the_url_gets_the_timeout_beside_its_own_options(monkeypatch):
    monkeypatch.setenv("LOCK_TIMEOUT_MS", "1234")
    plain = database_from_url("postgres://shop@db.internal/shop")
    assert plain["OPTIONS"]["options"] == "-c lock_timeout=1234ms"
    own = database_from_url("postgres://shop@db.internal/shop?options=-c%20statement_timeout%3D5000")
    assert own["OPTIONS"]["options"] == "-c statement_timeout=5000 -c lock_timeout=1234ms"
    monkeypatch.setenv("DB_LOCK_TIMEOUT_AT_CONNECT", "0")  # e.g. behind PgBouncer
    assert "options" not in database_from_url("postgres://shop@db.internal/shop")["OPTIONS"]
