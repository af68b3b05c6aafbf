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


def test_one_round_trip_for_both_limits(purchase_request, settings, monkeypatch):
    from redis.connection import AbstractConnection

    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "5/m", "60/m"
    ratelimits.enforce_purchase_limits(purchase_request)  # the server learns the script once
    sent = []
    real_send = AbstractConnection.send_packed_command

    def counting_send(self, command, *args, **kwargs):  # counts what goes on the wire, sends it
        sent.append(command)
        return real_send(self, command, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting_send)
    ratelimits.enforce_purchase_limits(purchase_request)
    assert len(sent) == 1
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


def test_no_limit_set_asks_nothing_of_redis(purchase_request, settings, writes):
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = None, None
    assert ratelimits.enforce_purchase_limits(purchase_request) is False
    assert writes == []
    settings.RATE_LIMIT_PURCHASE_USER = "5/m"
    assert ratelimits.enforce_purchase_limits(purchase_request) is True
    assert len(writes) >= 1


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


@pytest.fixture
def writes(monkeypatch):
    """Every write the limiter puts on a Redis connection, recorded (and sent)."""
    from redis.connection import AbstractConnection

    sent = []
    real_send = AbstractConnection.send_packed_command

    def counting_send(self, command, *args, **kwargs):
        sent.append(command)
        return real_send(self, command, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting_send)
    return sent
