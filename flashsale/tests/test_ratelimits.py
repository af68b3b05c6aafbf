"""The purchase limits in one Redis round trip, with django-ratelimit's own counters and semantics."""

import pytest
from django.test import RequestFactory
from django_ratelimit.core import get_usage

from flashsale import ratelimits
from flashsale.errors import RateLimited
from flashsale.sockets import readable_now
from tests.servers import wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture
def purchase_request(shopper):
    request = RequestFactory().post("/api/orders/", REMOTE_ADDR="10.1.2.3")
    request.user = shopper
    return request


def usage(request, group, key, rate):
    return get_usage(request, group=group, key=key, rate=rate, increment=False)


def test_counts_live_where_django_ratelimit_reads_them(purchase_request, settings):
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "5/m", "60/m"
    for _ in range(3):
        ratelimits.enforce_purchase_limits(purchase_request)
    assert usage(purchase_request, "purchase-user", ratelimits._by_user, "5/m")["count"] == 3
    assert usage(purchase_request, "purchase-ip", ratelimits._by_ip, "60/m")["count"] == 3


def test_one_round_trip_for_both_limits(purchase_request, settings, redis_writes):
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "5/m", "60/m"
    ratelimits.enforce_purchase_limits(purchase_request)  # the server learns the script once
    redis_writes.clear()
    ratelimits.enforce_purchase_limits(purchase_request)
    assert len(redis_writes) == 1
    assert usage(purchase_request, "purchase-user", ratelimits._by_user, "5/m")["count"] == 2


def test_the_shopper_limit_refuses_with_retry_after_and_spares_the_address(purchase_request, settings):
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "2/m", "60/m"
    ratelimits.enforce_purchase_limits(purchase_request)
    ratelimits.enforce_purchase_limits(purchase_request)
    for _ in range(3):
        with pytest.raises(RateLimited) as refused:
            ratelimits.enforce_purchase_limits(purchase_request)
        assert 1 <= refused.value.retry_after <= 60
    # As with two get_usage calls in a row: a refused shopper's requests do not count per address.
    assert usage(purchase_request, "purchase-ip", ratelimits._by_ip, "60/m")["count"] == 2


def test_the_address_limit_refuses_other_shoppers_from_it(purchase_request, make_user, settings):
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "5/m", "2/m"
    ratelimits.enforce_purchase_limits(purchase_request)
    ratelimits.enforce_purchase_limits(purchase_request)
    purchase_request.user = make_user()
    with pytest.raises(RateLimited):
        ratelimits.enforce_purchase_limits(purchase_request)


def test_limits_off_touch_nothing(purchase_request, settings):
    settings.RATE_LIMIT_PURCHASE_USER = settings.RATE_LIMIT_PURCHASE_IP = None
    for _ in range(10):
        ratelimits.enforce_purchase_limits(purchase_request)
    assert usage(purchase_request, "purchase-user", ratelimits._by_user, "5/m")["count"] == 0


def test_redis_down_fails_open(purchase_request, settings):
    from flashsale.settings.base import redis_cache

    settings.CACHES = {"default": redis_cache("redis://127.0.0.1:1/0")}  # nothing listens there
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "1/m", "1/m"
    for _ in range(3):
        ratelimits.enforce_purchase_limits(purchase_request)  # no refusal: the database still guards stock


def test_a_server_that_forgot_the_script_is_taught_it_again(purchase_request, settings):
    """After a Redis restart (or SCRIPT FLUSH) EVALSHA answers NOSCRIPT: the count still happens, once."""
    from django.core.cache import cache

    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "5/m", "60/m"
    ratelimits.enforce_purchase_limits(purchase_request)
    cache.client.get_client(write=True).script_flush()
    ratelimits.enforce_purchase_limits(purchase_request)
    assert usage(purchase_request, "purchase-user", ratelimits._by_user, "5/m")["count"] == 2


def test_a_connection_the_server_closed_is_dropped_and_the_next_purchase_counts(purchase_request, settings):
    from django.core.cache import cache

    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "5/m", "60/m"
    ratelimits.enforce_purchase_limits(purchase_request)
    kept = ratelimits._connections.idle[-1]  # the next purchase's connection
    cache.client.get_client(write=True).execute_command("CLIENT", "KILL", "ID", _client_id(kept))
    ratelimits.enforce_purchase_limits(purchase_request)  # fails open at worst: never an error
    ratelimits.enforce_purchase_limits(purchase_request)
    assert usage(purchase_request, "purchase-user", ratelimits._by_user, "5/m")["count"] >= 2
    assert kept not in ratelimits._connections.idle


def test_a_kept_connection_the_server_closed_is_not_used(purchase_request, settings, caplog):
    """Closed while it waited in the list (a Redis restart would close them all): the next
    purchase takes another connection and is counted, not waved through unlimited."""
    from django.core.cache import cache

    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "5/m", "60/m"
    ratelimits.enforce_purchase_limits(purchase_request)
    kept = ratelimits._connections.idle[-1]
    cache.client.get_client(write=True).execute_command("CLIENT", "KILL", "ID", _client_id(kept))
    wait_until(lambda: readable_now(kept._sock), what="the server's close to reach the kept socket")
    ratelimits.enforce_purchase_limits(purchase_request)
    assert "rate limits skipped" not in caplog.text
    assert usage(purchase_request, "purchase-user", ratelimits._by_user, "5/m")["count"] == 2
    assert kept not in ratelimits._connections.idle


def _client_id(connection) -> int:
    connection.send_command("CLIENT", "ID")
    return connection.read_response()


def test_one_connection_serves_purchases_one_after_another(purchase_request, settings):
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "100/m", "100/m"
    ratelimits.enforce_purchase_limits(purchase_request)
    kept = len(ratelimits._connections.idle)
    for _ in range(20):
        ratelimits.enforce_purchase_limits(purchase_request)
    assert len(ratelimits._connections.idle) == kept >= 1


def test_concurrent_purchases_are_each_counted_once(purchase_request, settings):
    """Threads with their own connections: every count lands, none twice."""
    import threading

    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "1000/m", "1000/m"
    start = threading.Barrier(8)

    def buy_ten():
        start.wait()
        for _ in range(10):
            ratelimits.enforce_purchase_limits(purchase_request)

    threads = [threading.Thread(target=buy_ten) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert usage(purchase_request, "purchase-user", ratelimits._by_user, "1000/m")["count"] == 80
    assert 1 <= len(ratelimits._connections.idle) <= 8 + 1  # at most one per thread, and one from before


def test_remembered_keys_follow_a_changed_key_setting(purchase_request, settings):
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "5/m", None
    ratelimits.enforce_purchase_limits(purchase_request)
    ratelimits.enforce_purchase_limits(purchase_request)
    settings.RATELIMIT_CACHE_PREFIX = "rl-other:"  # django-ratelimit's keys change with it: so do ours
    ratelimits.enforce_purchase_limits(purchase_request)
    assert usage(purchase_request, "purchase-user", ratelimits._by_user, "5/m")["count"] == 1
    settings.RATELIMIT_CACHE_PREFIX = "rl:"
    assert usage(purchase_request, "purchase-user", ratelimits._by_user, "5/m")["count"] == 2


def test_remembered_keys_are_bounded_and_stay_django_ratelimits(purchase_request, settings, monkeypatch):
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "5/m", "60/m"
    monkeypatch.setattr(ratelimits._LimitKeys, "MAX_ENTRIES", 1)
    for _ in range(3):  # two keys a purchase: each fills the memo, the next clears it
        ratelimits.enforce_purchase_limits(purchase_request)
    assert len(ratelimits._limit_keys.keys) == 1
    assert usage(purchase_request, "purchase-user", ratelimits._by_user, "5/m")["count"] == 3
    assert usage(purchase_request, "purchase-ip", ratelimits._by_ip, "60/m")["count"] == 3


def test_no_limit_set_asks_nothing_of_redis(purchase_request, settings, redis_writes):
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = None, None
    assert ratelimits.enforce_purchase_limits(purchase_request) is False
    assert redis_writes == []
    settings.RATE_LIMIT_PURCHASE_USER = "5/m"
    assert ratelimits.enforce_purchase_limits(purchase_request) is True
    assert len(redis_writes) >= 1


def test_remembered_keys_follow_a_changed_cache_key_prefix(purchase_request, settings):
    import copy

    from django.core.cache import caches

    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "5/m", None
    ratelimits.enforce_purchase_limits(purchase_request)
    other = copy.deepcopy(settings.CACHES)
    other["default"]["KEY_PREFIX"] = "flashsale-test-other"
    settings.CACHES = other
    ratelimits.enforce_purchase_limits(purchase_request)  # counted under the new prefix: a first
    assert usage(purchase_request, "purchase-user", ratelimits._by_user, "5/m")["count"] == 1
    caches["default"].delete_pattern("*")  # what this test counted under the other prefix


def test_the_remembered_pool_follows_a_changed_cache_setting(purchase_request, settings, caplog):
    import copy

    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "5/m", None
    ratelimits.enforce_purchase_limits(purchase_request)  # the test Redis's pool, remembered
    working = settings.CACHES
    unreachable = copy.deepcopy(working)
    unreachable["default"]["LOCATION"] = "redis://127.0.0.1:1/0"
    settings.CACHES = unreachable
    assert ratelimits.enforce_purchase_limits(purchase_request) is True  # asked, failed open
    assert "rate limits skipped" in caplog.text
    settings.CACHES = working
    assert usage(purchase_request, "purchase-user", ratelimits._by_user, "5/m")["count"] == 1


# Several purchases' limits counted together (a purchase group's, orders.services).


def _purchase_by(user, address="10.1.2.3"):
    request = RequestFactory().post("/api/orders/", REMOTE_ADDR=address)
    request.user = user
    return request


def test_pending_limits_count_nothing_until_counted(purchase_request, settings, redis_writes):
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "5/m", "60/m"
    pending = ratelimits.purchase_limits(purchase_request)
    assert redis_writes == [] and not pending.counted
    assert usage(purchase_request, "purchase-user", ratelimits._by_user, "5/m")["count"] == 0
    pending.count()
    pending.count()  # once only
    assert usage(purchase_request, "purchase-user", ratelimits._by_user, "5/m")["count"] == 1
    assert usage(purchase_request, "purchase-ip", ratelimits._by_ip, "60/m")["count"] == 1
    settings.RATE_LIMIT_PURCHASE_USER = settings.RATE_LIMIT_PURCHASE_IP = None
    assert ratelimits.purchase_limits(purchase_request) is None


def test_many_purchases_are_counted_in_one_write_in_their_order(shopper, make_user, settings, redis_writes):
    """One shopper three times against '2/m', another twice from the same address against
    '3/m' per address, a third from elsewhere: one round trip, and each purchase gets what
    one-by-one counting gives."""
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "2/m", "3/m"
    ratelimits.enforce_purchase_limits(_purchase_by(make_user(), "10.9.9.9"))  # the server learns the script
    redis_writes.clear()
    other, third = make_user(), make_user()
    requests = [_purchase_by(shopper), _purchase_by(shopper), _purchase_by(shopper), _purchase_by(other),
                _purchase_by(other), _purchase_by(third, "10.4.4.4")]
    pending = [ratelimits.purchase_limits(request) for request in requests]
    ratelimits.count_limits(pending)
    assert len(redis_writes) == 1
    refused = [limits.refusal for limits in pending]
    # shopper: 1, 2 pass (address 1, 2); the third passes the shopper limit (not counted per address);
    # other: the address's third passes; its second is the address's fourth; third: its own address.
    assert [r is not None for r in refused] == [False, False, True, False, True, False]
    assert all(isinstance(r, RateLimited) and 1 <= r.retry_after <= 60 for r in refused if r is not None)
    assert usage(requests[0], "purchase-user", ratelimits._by_user, "2/m")["count"] == 3
    assert usage(requests[3], "purchase-user", ratelimits._by_user, "2/m")["count"] == 2
    assert usage(requests[0], "purchase-ip", ratelimits._by_ip, "3/m")["count"] == 4
    assert usage(requests[5], "purchase-ip", ratelimits._by_ip, "3/m")["count"] == 1
    redis_writes.clear()
    ratelimits.count_limits(pending)  # already counted: nothing is sent again
    assert redis_writes == []
    with pytest.raises(RateLimited):
        pending[2].count()


def test_counting_together_matches_counting_one_by_one(make_user, settings):
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "2/m", "4/m"
    users = [make_user() for _ in range(3)]
    order = [0, 1, 0, 0, 2, 1, 1, 2, 0]
    together = [ratelimits.purchase_limits(_purchase_by(users[n], "10.5.5.5")) for n in order]
    ratelimits.count_limits(together)
    from django.core.cache import cache

    cache.delete_pattern("*")  # the same again, one at a time, from nothing counted
    alone = []
    for n in order:
        try:
            ratelimits.enforce_purchase_limits(_purchase_by(users[n], "10.5.5.5"))
            alone.append(False)
        except RateLimited:
            alone.append(True)
    assert [limits.refusal is not None for limits in together] == alone
    assert alone == [False, False, False, True, False, True, True, True, True]


def test_redis_down_counts_none_of_them_and_refuses_none(make_user, settings, caplog):
    from flashsale.settings.base import redis_cache

    settings.CACHES = {"default": redis_cache("redis://127.0.0.1:1/0")}
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "1/m", "1/m"
    pending = [ratelimits.purchase_limits(_purchase_by(make_user())) for _ in range(3)]
    ratelimits.count_limits(pending)
    assert all(limits.counted and limits.refusal is None for limits in pending)
    assert caplog.text.count("rate limits skipped") == 1  # one line for the one failed write
