"""Two gunicorn instances behind nginx (Debian's package), bursting through the proxy.

Shows: no oversell across instances (the row lock lives in PostgreSQL), the per-shopper
rate limit is shared (its counter lives in Redis), and with TRUSTED_PROXIES=1 the per-address
limit keys on the client address nginx saw, which a spoofed X-Forwarded-For cannot change.
Loopback has a whole /8, so clients bind to 127.0.x.y to be different addresses.
"""

import re
from contextlib import ExitStack, contextmanager

import httpx
import pytest

from tests.concurrency import run_at_once
from tests.faults import buy, token_for
from tests.invariants import assert_stock_reconciles
from tests.servers import nginx_serving, running_app, scratch_redis

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

NGINX_SERVERS = """
    upstream flashsale {{
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 256k;
        location / {{
            proxy_pass http://flashsale;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Request-ID $request_id;
        }}
    }}
"""


@contextmanager
def nginx_in_front_of(*bases: str):
    servers = "\n".join(f"        server {base.removeprefix('http://')};" for base in bases)
    with nginx_serving(lambda port: NGINX_SERVERS.format(servers=servers, port=port)) as front:
        yield front


def _buy(front, source, token, product_id, headers=None) -> tuple[int, str | None]:
    return buy(front, token, product_id, headers=headers, source=source, timeout=30)[:2]


def _purchases_served(base: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    return sum(float(value) for value in re.findall(r'^flashsale_purchases_total\{[^}]*\} (\S+)$', text, re.M))


def test_two_instances_behind_nginx_share_the_stock_and_the_limits(make_user, make_product):
    hot = make_product(stock=20)
    plenty = make_product(stock=1000)
    buyers = [token_for(make_user()) for _ in range(40)]
    greedy = token_for(make_user())  # has bought nothing yet, so all of its 3/h are left
    # Hourly windows: django-ratelimit's windows are fixed, and a minute's could roll over
    # between two of the requests below and let one more through (seen once in CI).
    env = {"RATE_LIMIT_PURCHASE_USER": "3/h", "RATE_LIMIT_PURCHASE_IP": "10/h", "TRUSTED_PROXIES": "1"}
    with ExitStack() as stack:
        redis = stack.enter_context(scratch_redis())
        env["REDIS_URL"] = redis.url
        instances = [stack.enter_context(running_app(env=env, workers=2)) for _ in range(2)]
        front = stack.enter_context(nginx_in_front_of(*instances))

        # 1. A burst of 40 buyers (each from its own address) for 20 units, across both instances.
        burst = run_at_once(lambda i: _buy(front, f"127.0.0.{10 + i}", buyers[i], hot.pk),
                            [(i,) for i in range(40)], max_sessions=20)
        served = [_purchases_served(base) for base in instances]

        # 2. One shopper, many requests, spread over both instances: the 3/h limit holds overall.
        per_shopper = [_buy(front, "127.0.1.1", greedy, plenty.pk) for _ in range(6)]

        # 3. One address, many shoppers: 10/h per address, keyed on the address nginx saw.
        crowd = buyers[10:21]
        per_address = [_buy(front, "127.0.2.1", token, plenty.pk) for token in crowd]
        spoofed = _buy(front, "127.0.2.1", buyers[30], plenty.pk, headers={"X-Forwarded-For": "203.0.113.9"})
        neighbour = _buy(front, "127.0.2.2", buyers[31], plenty.pk)

    print(f"nginx burst: {burst.count((201, None))} x 201, "
          f"{burst.count((409, 'sold_out'))} x sold_out; per instance {served}")
    assert burst.count((201, None)) == 20 and burst.count((409, "sold_out")) == 20
    assert all(count > 0 for count in served) and sum(served) == 40  # both instances sold
    hot.refresh_from_db()
    assert hot.stock == 0
    assert_stock_reconciles(hot.pk)

    assert [code for _s, code in per_shopper] == [None] * 3 + ["rate_limited"] * 3
    assert [code for _s, code in per_address] == [None] * 10 + ["rate_limited"]
    assert spoofed == (429, "rate_limited")  # a forged X-Forwarded-For does not get a fresh address
    assert neighbour == (201, None)  # the next address is not punished for its neighbour
    assert_stock_reconciles(plenty.pk)
