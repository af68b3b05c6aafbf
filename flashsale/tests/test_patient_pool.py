"""The pool under gevent workers waits out a burst (connections busy) but not an outage (none connected)."""

import threading

import pytest
from django.db import connection
from psycopg_pool import PoolTimeout

from flashsale.postgres.base import PatientPool
from tests.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def pool_for(kwargs: dict, **options) -> PatientPool:
    pool = PatientPool(kwargs=kwargs, min_size=0, max_size=1, open=True, **options)
    return pool


def test_a_request_waits_past_one_timeout_while_the_connection_is_busy():
    pool = pool_for(connection.get_connection_params(), timeout=0.2, queue_seconds=60)
    try:
        busy = pool.getconn()
        got = []

        def second_request():
            conn = pool.getconn()  # waits several 0.2 s slices: the one connection is lent
            got.append(conn.execute("SELECT 1").fetchone()[0])
            pool.putconn(conn)

        waiter = threading.Thread(target=second_request)
        waiter.start()
        waiter.join(timeout=1.0)  # five slices: a plain pool would have given up
        assert waiter.is_alive() and not got
        pool.putconn(busy)
        waiter.join(timeout=30)
        assert got == [1]
    finally:
        pool.close()


def test_with_nothing_connected_it_gives_up_after_one_timeout():
    params = {**connection.get_connection_params(), "host": "127.0.0.1", "port": free_port(), "connect_timeout": 1}
    pool = pool_for(params, timeout=0.5, queue_seconds=3600)  # waiting the queue out would hang for an hour
    outcome = []

    def request():
        try:
            pool.getconn()
        except PoolTimeout as exc:
            outcome.append(exc)

    try:
        asking = threading.Thread(target=request, daemon=True)
        asking.start()
        asking.join(timeout=60)
        assert len(outcome) == 1  # the database is unreachable: a prompt 503 unavailable, not the queue
    finally:
        pool.close(timeout=1)
