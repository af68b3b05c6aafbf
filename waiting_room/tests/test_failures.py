"""Failure is a decision: Redis unreachable means the waiting room fails open; two instances share one line.

Real gunicorn servers and a real scratch Redis that the tests stop, freeze and restart.
"""

import os
import signal
from datetime import timedelta

import httpx
import pytest
from django.test import override_settings

from orders.services import purchase
from tests.faults import token_for
from tests.invariants import assert_stock_reconciles
from tests.servers import running_app, scratch_redis, wait_until
from waiting_room import services
from waiting_room.admission import check_admission
from waiting_room.errors import AdmissionInvalid, AdmissionRequired

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _call(base, method, path, token, *, json=None, headers=None):
    response = httpx.request(method, f"{base}{path}", json=json, timeout=30,
                             headers={"Authorization": f"Token {token}", **(headers or {})})
    return response.status_code, response.json()


def _join(base, token, product_id):
    return _call(base, "POST", f"/api/products/{product_id}/queue/", token)


def _poll(base, token, product_id):
    return _call(base, "GET", f"/api/products/{product_id}/queue/", token)


def _buy(base, token, product_id, admission_pass=None):
    headers = {"Admission-Pass": admission_pass} if admission_pass else {}
    return _call(base, "POST", "/api/orders/", token, json={"product_id": product_id}, headers=headers)


def test_two_instances_share_one_line(make_user, make_product):
    """Join on one instance, poll and buy on the other: one ticket, one order of places, one pass."""
    product = make_product(stock=10, waiting_room=True, admit_per_minute=1, starts_in=timedelta(seconds=-1))
    tokens = [token_for(make_user()) for _ in range(4)]
    with scratch_redis() as redis, running_app(env={"REDIS_URL": redis.url}, workers=1) as one, \
            running_app(env={"REDIS_URL": redis.url}, workers=1) as other:
        joined = [_join(one if i % 2 else other, token, product.pk) for i, token in enumerate(tokens)]
        rejoined = [_join(other if i % 2 else one, token, product.pk) for i, token in enumerate(tokens)]
        polled = [_poll(other, token, product.pk) for token in tokens]
        first_pass = polled[0][1]["pass"]
        bought_elsewhere = _buy(one, tokens[0], product.pk, first_pass)
        refused = _buy(one, tokens[1], product.pk)

    assert [status for status, _ in joined] == [201] * 4
    assert [status for status, _ in rejoined] == [200] * 4
    assert [body["ticket"] for _, body in rejoined] == [body["ticket"] for _, body in joined]
    # Rate 1/min, one second in: only the first place is admitted; the rest wait in arrival order.
    assert [body["admitted"] for _, body in polled] == [True, False, False, False]
    assert [body["position"] for _, body in polled] == [0, 0, 1, 2]
    assert bought_elsewhere[0] == 201, bought_elsewhere
    assert refused == (403, refused[1]) and refused[1]["code"] == "admission_required"
    assert_stock_reconciles(product.pk)


def test_redis_frozen_fails_open_then_the_line_resumes_where_it_was(make_user, make_product):
    product = make_product(stock=10, max_per_user=1, waiting_room=True, admit_per_minute=1,
                           starts_in=timedelta(seconds=-1))
    first, waiting, newcomer = (token_for(make_user()) for _ in range(3))
    with scratch_redis() as redis, running_app(env={"REDIS_URL": redis.url}, workers=1) as base:
        assert _join(base, first, product.pk)[1]["admitted"]
        before = _join(base, waiting, product.pk)[1]
        os.kill(redis.process.pid, signal.SIGSTOP)  # hung, not gone: its data survives
        try:
            health = httpx.get(f"{base}/api/health/", timeout=30).json()
            open_join = _join(base, newcomer, product.pk)
            open_poll = _poll(base, waiting, product.pk)
            bought_without_pass = _buy(base, waiting, product.pk)
            over_the_limit = _buy(base, waiting, product.pk)
        finally:
            os.kill(redis.process.pid, signal.SIGCONT)
        wait_until(lambda: httpx.get(f"{base}/api/health/").json()["status"] == "ok", what="health ok again")
        after = _poll(base, waiting, product.pk)
        refused_again = _buy(base, first, product.pk)

    assert health["status"] == "degraded"
    assert open_join[0] == 200 and open_join[1]["admitted"] and open_join[1]["pass"] and open_join[1]["ticket"] == "open"
    assert open_poll[0] == 200 and open_poll[1]["admitted"]
    assert bought_without_pass[0] == 201, bought_without_pass
    assert over_the_limit[0] == 409 and over_the_limit[1]["code"] == "purchase_limit_reached"
    # Back: the same ticket in the same place, and buying needs a pass again.
    assert after[0] == 200 and after[1]["ticket"] == before["ticket"]
    assert refused_again[0] == 403 and refused_again[1]["code"] == "admission_required"
    assert_stock_reconciles(product.pk)


def test_redis_killed_and_restarted_empty_the_line_starts_over(make_user, make_product, settings):
    """In-process: a dead Redis admits everyone; a fresh empty one brings the waiting room back."""
    product = make_product(stock=10, waiting_room=True, admit_per_minute=1, starts_in=timedelta(seconds=-1))
    shopper, other = make_user(), make_user()
    with scratch_redis() as redis_server:
        caches = {"default": {**settings.CACHES["default"], "LOCATION": redis_server.url}}
        with override_settings(CACHES=caches):
            services.join_line(user=shopper, product_id=product.pk)
            assert not services.join_line(user=other, product_id=product.pk).admitted
            redis_server.stop()
            while_down = services.line_standing(user=other, product_id=product.pk)
            assert while_down.admitted and while_down.ticket == services.OPEN_TICKET
            check_admission(waiting_room=True, product_id=product.pk, user_id=other.pk, admission_pass=None)
            check_admission(waiting_room=True, product_id=product.pk, user_id=other.pk, admission_pass="forged")
            assert purchase(user=other, product_id=product.pk).created
            redis_server.start()
            with pytest.raises(AdmissionRequired):
                purchase(user=other, product_id=product.pk)
            with pytest.raises(AdmissionInvalid):
                purchase(user=other, product_id=product.pk, admission_pass="forged")
            rejoined = services.join_line(user=other, product_id=product.pk)
            assert rejoined.created and rejoined.admitted  # an empty line: first again
    assert_stock_reconciles(product.pk)
