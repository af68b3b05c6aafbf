"""Rate limits over HTTP when purchases are grouped: a real gunicorn, a real Redis.

Concurrent purchases of one product in a worker are applied as one group, which counts
its buyers' rate limits in one Redis round trip (orders.services). Whatever the grouping,
each request is counted once and the limits hold exactly: one shopper's burst gets its
limit's worth of orders, one address's crowd its limit's worth.
"""

import pytest
import redis

from tests.concurrency import row_locked_elsewhere, start_at_once
from tests.faults import backends, buy, token_for
from tests.invariants import assert_stock_reconciles
from tests.servers import running_app, scratch_redis, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _increments(url: str) -> int:
    """INCRs the scratch Redis ran, those inside scripts included: the limits' counts."""
    return redis.Redis.from_url(url).info("commandstats").get("cmdstat_incr", {}).get("calls", 0)


def test_a_burst_held_behind_the_row_lock_keeps_every_limit_exactly(make_user, make_product):
    product = make_product(stock=1000)
    greedy = token_for(make_user())
    crowd = [token_for(make_user()) for _ in range(15)]
    env = {"RATE_LIMIT_PURCHASE_USER": "4/h", "RATE_LIMIT_PURCHASE_IP": "10/h"}
    with scratch_redis() as scratch:
        env["REDIS_URL"] = scratch.url
        with running_app(env=env, workers=1) as base:
            before = _increments(scratch.url)
            # The lock held elsewhere: the first buyer waits on it and the others line up behind it.
            with row_locked_elsewhere(product.pk) as held:
                join = start_at_once(lambda: buy(base, greedy, product.pk, source="127.0.3.1")[:2],
                                     [()] * 12)
                wait_until(lambda: backends("wait_event_type = 'Lock'"), what="a purchase to wait on the lock")
                held.release()
                mine = join()
            with row_locked_elsewhere(product.pk) as held:
                join = start_at_once(lambda token: buy(base, token, product.pk, source="127.0.3.2")[:2],
                                     [(token,) for token in crowd])
                wait_until(lambda: backends("wait_event_type = 'Lock'"), what="a purchase to wait on the lock")
                held.release()
                theirs = join()
            increments = _increments(scratch.url) - before

    assert sorted(mine, key=str) == [(201, None)] * 4 + [(429, "rate_limited")] * 8
    assert sorted(theirs, key=str) == [(201, None)] * 10 + [(429, "rate_limited")] * 5
    # Each request counted once per limit it reached: all 27 per shopper; per address the 19
    # the shopper limit let through (4 of the greedy shopper's, the crowd's 15).
    assert increments == 27 + (4 + 15)
    product.refresh_from_db()
    assert product.stock == 1000 - 14
    assert_stock_reconciles(product.pk)
