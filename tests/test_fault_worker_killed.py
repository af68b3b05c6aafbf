"""A gunicorn worker SIGKILLed while it holds the product's row lock, mid-purchase.

How the worker is paused inside the lock without touching shipped code: the test puts a
trigger on the orders table (on the test database, dropped afterwards) that calls
pg_sleep for one marked purchase (quantity 3). That purchase has locked the product row
and taken the stock, and now sleeps in its INSERT: exactly "between decrement and
order". The test database gets client_connection_check_interval (new sessions only), so
the sleeping backend notices its client is gone; an idle-in-transaction backend would
notice at once, but one busy in a statement only when that statement ends without it,
which is why docker-compose.yml sets it on the server too.

Found: PostgreSQL rolls the dead session back (stock restored, no order), releases the
lock, and the buyers queued behind it are served; gunicorn replaces the worker. Since the
workers are gevent ones, the buyers the killed worker had accepted die with it, unanswered
and with nothing made; re-sent with their Idempotency-Key they get their order.
"""

import os
import signal
import threading

import pytest
from django.db import connection

from orders.models import Order
from tests.concurrency import row_locked_elsewhere
from tests.faults import backends, buy, token_for
from tests.invariants import assert_stock_reconciles
from tests.servers import running_app, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MARKED_QUANTITY = 3


def _install_pause(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"""
            CREATE OR REPLACE FUNCTION fault_pause_marked_order() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.quantity = {MARKED_QUANTITY} THEN PERFORM pg_sleep(60); END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER fault_pause_marked_order BEFORE INSERT ON {table}
                FOR EACH ROW EXECUTE FUNCTION fault_pause_marked_order();
        """)
        cursor.execute("SELECT current_database()")
        (name,) = cursor.fetchone()
        # Armed at the start of each statement, so it must be a session default, not a SET in the trigger.
        cursor.execute(f'ALTER DATABASE "{name}" SET client_connection_check_interval = 100')


def _remove_pause(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND wait_event = 'PgSleep'")
        cursor.execute(f"DROP TRIGGER IF EXISTS fault_pause_marked_order ON {table}")
        cursor.execute("DROP FUNCTION IF EXISTS fault_pause_marked_order()")
        cursor.execute("SELECT current_database()")
        (name,) = cursor.fetchone()
        cursor.execute(f'ALTER DATABASE "{name}" RESET client_connection_check_interval')


def _waits_for(predicate, *, seconds: float) -> bool:
    try:
        wait_until(predicate, timeout=seconds)
    except TimeoutError:
        return False
    return True


def test_a_worker_killed_inside_the_row_lock_leaves_nothing_half_done(make_user, make_product):
    table = Order._meta.db_table
    product = make_product(stock=10)
    victim_token = token_for(make_user())
    others = [token_for(make_user()) for _ in range(5)]
    _install_pause(table)
    try:
        with running_app(env={"LOCK_TIMEOUT_MS": "20000"}, workers=2) as base:
            results = {}

            def fire(name, token, quantity):
                results[name] = buy(base, token, product.pk, quantity=quantity, key=f"key-{name}")

            victim = threading.Thread(target=fire, args=("victim", victim_token, MARKED_QUANTITY))
            victim.start()
            wait_until(lambda: backends("wait_event = 'PgSleep'"), what="the marked purchase to pause in the lock")
            (_pid, app_name, _event), = backends("wait_event = 'PgSleep'")
            worker_pid = int(app_name.rsplit("-", 1)[1])
            assert worker_pid in base.worker_pids()

            # One at a time: a buyer the victim's own worker accepts lines up in that worker's
            # memory (group commit), not on PostgreSQL's lock, and all five could land there.
            # Fired one by one, the accept balancer (flashsale/accept_balance.py) sends the next to
            # the other worker once the victim's holds two connections to its none, so by the
            # second buyer at the latest one queues on the row lock.
            buyers = [threading.Thread(target=fire, args=(f"buyer{i}", token, 1)) for i, token in enumerate(others)]
            for thread in buyers:
                thread.start()
                if _waits_for(lambda: backends("wait_event_type = 'Lock'"), seconds=2):
                    break
            for thread in buyers:
                if thread.ident is None:
                    thread.start()
            wait_until(lambda: backends("wait_event_type = 'Lock'"), what="another buyer to queue on the lock")
            product.refresh_from_db()
            assert product.stock == 10  # the paused purchase's decrement is not visible: uncommitted

            os.kill(worker_pid, signal.SIGKILL)
            for thread in [victim, *buyers]:
                thread.join(timeout=90)
            wait_until(lambda: not backends("wait_event = 'PgSleep'"), what="PostgreSQL to end the dead session")
            replaced = worker_pid not in base.worker_pids()
            # A gevent worker serves many requests at once: the buyers it had accepted died with
            # it, unanswered (their transactions rolled back with its connections). A client
            # re-sends an unanswered purchase with its Idempotency-Key, as after a restart.
            first_answers = {name: answer[:2] for name, answer in results.items() if name != "victim"}
            for i, token in enumerate(others):
                if results[f"buyer{i}"][0] == 0:
                    fire(f"buyer{i}", token, 1)
    finally:
        _remove_pause(table)

    assert results["victim"][0] == 0  # the connection died with the worker
    assert set(first_answers.values()) <= {(201, None), (0, None)}  # served, or dropped with the worker
    assert sorted(results[f"buyer{i}"][:2] for i in range(5)) == [(201, None)] * 5
    assert replaced
    product.refresh_from_db()
    assert product.stock == 5
    assert sorted(Order.objects.filter(product=product).values_list("quantity", flat=True)) == [1] * 5
    assert_stock_reconciles(product.pk)


def test_a_worker_killed_mid_group_leaves_no_half_applied_group(make_user, make_product):
    """A threaded worker whose buyers line up into one group; killed while the group inserts.

    Another session holds the row lock while five purchases reach the worker: the first
    leads and waits on the lock, the others pass their pre-check and wait in the worker's
    memory. Released, the leader applies all five in one transaction, which pauses in the
    bulk INSERT on the marked purchase; then the worker is SIGKILLed.
    """
    table = Order._meta.db_table
    # A per-shopper limit (never reached) so each buyer runs the pre-check's read: an unlimited
    # product's on-sale note would let the later ones skip it, and it is how they are seen lining up.
    product = make_product(stock=10, max_per_user=MARKED_QUANTITY)
    tokens = [token_for(make_user()) for _ in range(5)]
    quantities = [MARKED_QUANTITY, 1, 1, 1, 1]
    _install_pause(table)
    try:
        # No pool: each buyer's thread keeps its own connection, so a buyer lined up after its
        # pre-check shows as an idle backend (pooled, it would give its connection back).
        env = {"LOCK_TIMEOUT_MS": "20000", "GUNICORN_WORKER_CLASS": "gthread", "GUNICORN_THREADS": "8",
               "DB_POOL_MAX_SIZE": "0"}
        with running_app(env=env, workers=1) as base, row_locked_elsewhere(product.pk) as held:
            (worker_pid,) = base.worker_pids()
            results = {}

            def fire(index):
                results[index] = buy(base, tokens[index], product.pk, quantity=quantities[index])

            threads = [threading.Thread(target=fire, args=(i,)) for i in range(5)]
            for thread in threads:
                thread.start()
            worker = f"application_name = 'flashsale-worker-{worker_pid}'"
            wait_until(lambda: len(backends(f"{worker} AND wait_event_type = 'Lock'")) == 1,
                       what="the group's leader to wait on the row lock")
            lined_up = f"{worker} AND state = 'idle' AND query LIKE '%%p.max_per_user%%'"
            wait_until(lambda: len(backends(lined_up)) == 4, what="four buyers to line up after their pre-check")
            held.release()
            wait_until(lambda: backends("wait_event = 'PgSleep'"), what="the group to pause in its INSERT")
            (paused_insert,) = _queries("wait_event = 'PgSleep'")
            os.kill(worker_pid, signal.SIGKILL)
            for thread in threads:
                thread.join(timeout=90)
            wait_until(lambda: not backends("wait_event = 'PgSleep'"), what="PostgreSQL to end the dead session")
    finally:
        _remove_pause(table)

    assert paused_insert.startswith('INSERT INTO "orders_order"')
    # One statement inserting the whole group of five (Django sends a row's columns as arrays):
    assert "'{NULL,NULL,NULL,NULL,NULL}'" in paused_insert  # the five orders' idempotency keys
    assert [results[i][0] for i in range(5)] == [0] * 5  # every connection died with the worker
    product.refresh_from_db()
    assert product.stock == 10
    assert not Order.objects.filter(product=product).exists()
    assert_stock_reconciles(product.pk)


def _queries(where: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT query FROM pg_stat_activity WHERE datname = current_database() AND {where}")
        return [query for (query,) in cursor.fetchall()]
