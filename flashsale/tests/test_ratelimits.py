"""The purchase limits in one Redis round trip, with django-ratelimit's own counters and semantics."""

import pytest
from django.test import RequestFactory
from django_ratelimit.core import get_usage

from flashsale import ratelimits
from flashsale.errors import RateLimited

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
