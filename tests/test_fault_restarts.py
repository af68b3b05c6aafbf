"""PostgreSQL restarted, and Redis stopped, in the middle of a burst of purchases.

Found (see docs/failure-modes.md):
- PostgreSQL restart: every answer is 201, 409 or 503 `unavailable` JSON (no 500, no
  HTML); the same gunicorn workers serve 201s again once it is back (the connection pool
  discards each dead connection after the request it failed); re-sending each 503 with its Idempotency-Key settles every
  request, and the orders match the 201s one for one.
- Redis stopped: purchases go on (201/409 only), health says `degraded`, rate limits are
  off; they are back as soon as Redis is.
"""

import threading

import httpx
import pytest

from tests.concurrency import run_at_once
from tests.faults import buy, token_for
from tests.invariants import assert_stock_reconciles
from tests.servers import manage, running_app, scratch_postgres, scratch_redis, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BUYERS = 8


def _scratch_shop(pg, stock: int) -> tuple[int, list[str]]:
    """A product and BUYERS shopper tokens in the scratch database."""
    env = {"DATABASE_URL": pg.url}
    tokens_file = pg.dir / "tokens.csv"
    manage("create_shoppers", str(BUYERS), "--prefix", "restart", "--tokens", str(tokens_file), env=env)
    tokens = [line.split(",")[1] for line in tokens_file.read_text().split()]
    made = manage("shell", "-c", (
        "from decimal import Decimal; from products.services import create_product; "
        f"print(create_product(name='Restart sale', price=Decimal('5.00'), stock={stock}).pk)"
    ), env=env)
    return int(made.stdout.strip().splitlines()[-1]), tokens


def _scratch_reconciles(pg, product_id: int) -> tuple[int, int, int]:
    (row,) = pg.sql(
        "SELECT p.stock, p.units_received, COALESCE(SUM(o.quantity) FILTER (WHERE o.status <> 'cancelled'), 0) "
        "FROM products_product p LEFT JOIN orders_order o ON o.product_id = p.id WHERE p.id = %s "
        "GROUP BY p.id", [product_id])
    return row


def test_postgres_restart_during_a_burst():
    with scratch_postgres() as pg:
        product_id, tokens = _scratch_shop(pg, stock=10_000)
        with running_app(env={"DATABASE_URL": pg.url, "DB_CONNECT_TIMEOUT": "2"}, workers=2) as base:
            workers_before = sorted(base.worker_pids())
            answers: list[tuple] = []  # (token, key, status, code, content type)
            restarted = threading.Event()
            lock = threading.Lock()

            def shopper(index: int) -> None:
                after_restart = 0
                for n in range(10_000):  # bounded; stops a few requests after the restart
                    key = f"b{index}-{n}"
                    status, code, ctype = buy(base, tokens[index], product_id, key=key, timeout=30)
                    with lock:
                        answers.append((tokens[index], key, status, code, ctype))
                    if restarted.is_set():
                        after_restart += 1
                        if after_restart >= 5:
                            return

            threads = [threading.Thread(target=shopper, args=(i,)) for i in range(BUYERS)]
            for thread in threads:
                thread.start()
            wait_until(lambda: len(answers) >= 40, what="the burst to get going")
            pg.stop()  # a restart in two steps, so the burst surely meets the database down
            wait_until(lambda: sum(a[2] == 503 for a in answers) >= 10, what="requests to meet the database down")
            pg.start()
            restarted.set()
            for thread in threads:
                thread.join(timeout=120)

            seen = {(status, code) for _t, _k, status, code, _c in answers}
            html = [a for a in answers if not a[4].startswith("application/json")]
            # Settle every 503 by re-sending it with its key, as a client should.
            unsettled = [a for a in answers if a[2] == 503]
            settled = {}
            for token, key, *_rest in unsettled:
                settled[key] = buy(base, token, product_id, key=key)[:2]
            workers_after = sorted(base.worker_pids())

        created = {key for _t, key, status, *_r in answers if status == 201} | {
            key for key, (status, _c) in settled.items() if status == 201}
        stock, received, sold = _scratch_reconciles(pg, product_id)
        orders = pg.sql("SELECT idempotency_key FROM orders_order WHERE product_id = %s", [product_id])
        # The operator's own check too, where this branch has it (contract section 5).
        if manage("help", "reconcile_stock", env={"DATABASE_URL": pg.url}, check=False).returncode == 0:
            reconcile = manage("reconcile_stock", env={"DATABASE_URL": pg.url}, check=False)
            assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr

    print(f"PG restart: {len(answers)} answers, {sorted(seen, key=str)}, "
          f"{len(unsettled)} x 503 re-sent -> {sorted(set(settled.values()), key=str)}, {len(orders)} orders")
    assert not html
    assert seen <= {(201, None), (409, "sold_out"), (503, "unavailable")}, seen
    assert (503, "unavailable") in seen, "the restart should have been seen by some request"
    assert set(settled.values()) <= {(201, None)}  # each re-send gets its order (made then, or made now)
    assert workers_before == workers_after  # recovered without restarting anything
    assert {key for (key,) in orders} == created  # every order was answered 201, and vice versa
    assert stock >= 0 and stock + sold == received


def test_redis_stopped_during_a_burst_purchases_go_on_and_limits_come_back(make_user, make_product):
    product = make_product(stock=1000)
    users = [make_user() for _ in range(BUYERS)]
    tokens = [token_for(user) for user in users]
    limited_first, limited_after = tokens[0], tokens[1]
    with scratch_redis() as redis, running_app(
        env={"REDIS_URL": redis.url, "RATE_LIMIT_PURCHASE_USER": "3/m"}, workers=2,
    ) as base:
        before = [buy(base, limited_first, product.pk)[:2] for _ in range(4)]
        assert httpx.get(f"{base}/api/health/").json()["status"] == "ok"

        redis.stop()
        burst = run_at_once(lambda token: [buy(base, token, product.pk)[:2] for _ in range(5)],
                            [(token,) for token in tokens])
        health = httpx.get(f"{base}/api/health/")

        redis.start()
        wait_until(lambda: httpx.get(f"{base}/api/health/").json()["status"] == "ok", what="health to be ok again")
        after = [buy(base, limited_after, product.pk)[:2] for _ in range(4)]

    assert before == [(201, None)] * 3 + [(429, "rate_limited")]
    during = [answer for answers in burst for answer in answers]
    print(f"Redis down: {len(during)} purchases -> {sorted(set(during), key=str)}")
    assert during == [(201, None)] * (BUYERS * 5)  # no limits while Redis is down: 5 each, over the 3/m
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert health.json()["redis"]["status"] == "down"
    assert after == [(201, None)] * 3 + [(429, "rate_limited")]
    assert_stock_reconciles(product.pk)
