"""The request cycle of answers made before Django (flashsale.request_cycle): Django's housekeeping
done directly while only Django's own receivers listen, the signals sent as Django sends them
as soon as anything else does."""

import json

import pytest
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import connection
from rest_framework.authtoken.models import Token

from flashsale import request_cycle, request_id
from flashsale.authentication import remember_token
from flashsale.request_body import RequestBodyGate
from orders.fast_path import PurchaseFastPath
from orders.models import Order
from orders.tests.test_fast_path import call

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_shipped_receivers_are_the_known_ones():
    """If Django (or an app) adds a receiver, the fast path sends the signals; this says so."""
    assert request_cycle._only(request_started, request_cycle._STARTED)
    assert request_cycle._only(request_finished, request_cycle._FINISHED)


def test_a_fast_path_purchase_gives_its_connection_back_and_forgets_its_request_id(make_user, make_product):
    """What close_old_connections and the request id's receiver do after Django's own requests."""
    user, product = make_user(), make_product(stock=3)
    token = Token.objects.create(user=user)
    remember_token(token)
    connection.close()
    app = RequestBodyGate(PurchaseFastPath(get_wsgi_application()))
    status, headers, body = call(app, json.dumps({"product_id": product.pk}).encode(), token=token.key)
    assert connection.connection is None  # CONN_MAX_AGE=0 in tests: closed at the request's end
    assert request_id.current_request_id() == "-"
    assert status.startswith("201") and Order.objects.filter(user=user).count() == 1


def test_a_plain_cycle_clears_the_query_log_and_closes_an_expired_connection():
    connection.force_debug_cursor = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        assert connection.queries_log and connection.connection is not None
        request_cycle.started({})
        assert not connection.queries_log
        assert connection.connection is None  # CONN_MAX_AGE=0: expired as soon as it was opened
    finally:
        connection.force_debug_cursor = False


def test_another_receiver_hears_both_signals_and_the_plain_cycle_comes_back_without_it():
    heard = []

    def listener(sender, **kwargs):
        heard.append(sender)

    for signal in (request_started, request_finished):
        signal.connect(listener)
    try:
        request_cycle.started({})
        request_cycle.finished()
        assert len(heard) == 2
    finally:
        for signal in (request_started, request_finished):
            signal.disconnect(listener)
    assert request_cycle._only(request_started, request_cycle._STARTED)
    assert request_cycle._only(request_finished, request_cycle._FINISHED)


def test_a_cache_whose_close_does_something_is_closed(settings):
    cache.set("request-cycle", 1)
    assert any(cache.client._clients)
    settings.DJANGO_REDIS_CLOSE_CONNECTION = True
    request_cycle.finished()
    assert not any(cache.client._clients)  # django-redis let go of its connections


def test_django_redis_with_close_connection_off_is_left_alone():
    cache.set("request-cycle", 1)
    clients = list(cache.client._clients)
    request_cycle.finished()
    assert cache.client._clients == clients
