"""`manage.py bench --steps`: the tuning table, each step of the serving-tier work measured on its own.

Every step is the shop started with the environment of the step before plus one change,
all of them up at once and measured interleaved (the machine is shared: a rate is only
comparable with the rates measured beside it). Two steps have no switch, because nothing
about them is worth keeping switchable, and are measured in-process per call instead: the
order answer without DRF's serializer, and the purchase limits in one Redis round trip.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from stress import bench, bench_report
from stress.scenario import Sale, close_sale, prepare_sale
from stress.stack import serving

# (what changed, the environment of this step on top of the previous one)
STEPS = [
    ("before: sync × 5, `SELECT 1` health check per request, token query per request, stock read "
     "through Django (250 ms per-worker copy)",
     {"GUNICORN_WORKER_CLASS": "sync", "WEB_CONCURRENCY": "5", "CONN_HEALTH_CHECKS": "1",
      "TOKEN_CACHE_SECONDS": "0", "STOCK_READ_REPLAY": "0", "STOCK_READ_CACHE_MS": "250",
      "PURCHASE_FAST_PATH": "0", "TOKEN_LOCAL_COPY": "0", "EARLY_REFUSALS": "0",
      "DB_LOCK_TIMEOUT_AT_CONNECT": "0"}),
    ("gthread 3 × 4, keep-alive, psycopg pool of 16 per worker",
     {"GUNICORN_WORKER_CLASS": "gthread", "WEB_CONCURRENCY": "3", "GUNICORN_THREADS": "4", "DB_POOL_MAX_SIZE": "16"}),
    ("gevent 3 × 1000 connections, keep-alive, psycopg pool of 16 per worker",
     {"GUNICORN_WORKER_CLASS": "gevent", "GUNICORN_THREADS": "1"}),
    ("no per-request health check (the pool discards broken connections)", {"CONN_HEALTH_CHECKS": "0"}),
    ("lock timeout given when the connection opens, not a `set_config` statement per purchase transaction",
     {"DB_LOCK_TIMEOUT_AT_CONNECT": "1"}),
    ("token lookup from the shared cache", {"TOKEN_CACHE_SECONDS": "300"}),
    ("known stock answers replayed before Django (≤ 500 ms copy)",
     {"STOCK_READ_REPLAY": "1", "STOCK_READ_CACHE_MS": "500"}),
    ("pool of 4 connections per worker instead of 16 (fewer transactions queued on the row)",
     {"DB_POOL_MAX_SIZE": "4"}),
    ("plain token purchases answered before Django's request cycle (orders/fast_path.py)",
     {"PURCHASE_FAST_PATH": "1"}),
    ("token entries kept in each process while it hears every invalidation (flashsale/local_tokens.py)",
     {"TOKEN_LOCAL_COPY": "1"}),
    ("sold-out purchases answered from gunicorn's parsed request, before the WSGI layers (flashsale/early_refusals.py)",
     {"EARLY_REFUSALS": "1"}),
]


def step_environments() -> list[tuple[str, dict]]:
    env: dict = {}
    steps = []
    for label, change in STEPS:
        env = {**env, **change}
        steps.append((label, env))
    return steps


def order_rendering_per_call(calls: int = 2000) -> dict:
    """µs to turn one order into the answer's dict: DRF's OrderSerializer against orders.api.order_answer."""
    from orders.api import order_answer
    from orders.models import Order
    from orders.serializers import OrderSerializer

    order = Order.objects.select_related("product").order_by("-pk").first()
    timings = {}
    for name, render in (("OrderSerializer", lambda: OrderSerializer(order).data), ("order_answer", lambda: order_answer(order))):
        started = time.perf_counter()
        for _ in range(calls):
            render()
        timings[name] = round((time.perf_counter() - started) / calls * 1e6, 1)
    return timings


def purchase_limits_per_call(calls: int = 2000) -> dict:
    """µs per purchase for both limits against the real Redis: two django-ratelimit `get_usage` calls
    (ADD, then INCR, each) against the one-script version."""
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory, override_settings

    from flashsale import ratelimits

    request = RequestFactory().post("/api/orders/", REMOTE_ADDR="10.9.9.9")
    request.user = get_user_model()(pk=10**9, username="bench-limits")
    timings = {}
    with override_settings(RATE_LIMIT_PURCHASE_USER="1000000/m", RATE_LIMIT_PURCHASE_IP="1000000000/m"):
        def two_get_usage_calls():
            ratelimits._enforce(request, group="purchase-user", key=ratelimits._by_user, rate="1000000/m")
            ratelimits._enforce(request, group="purchase-ip", key=ratelimits._by_ip, rate="1000000000/m")

        for name, enforce in (("django-ratelimit get_usage × 2", two_get_usage_calls),
                              ("one script", lambda: ratelimits.enforce_purchase_limits(request))):
            started = time.perf_counter()
            for _ in range(calls):
                enforce()
            timings[name] = round((time.perf_counter() - started) / calls * 1e6, 1)
    return timings


def run(out: Path, say=print) -> dict:
    started = time.perf_counter()
    results: dict = {"machine": bench.machine(), "seconds_per_load": bench.SECONDS, "repeats": bench.REPEATS}
    hot = prepare_sale(buyers=bench.BUYERS, stock=bench.HOT_STOCK)
    warm = prepare_sale(buyers=16, stock=bench.HOT_STOCK)
    sold_out = prepare_sale(buyers=1, stock=0)
    sold_out = Sale(sold_out.product_id, 0, hot.tokens, hot.reader_token)
    steps = step_environments()
    runs: dict = {label: {} for label, _env in steps}
    with contextlib.ExitStack() as stack:
        servers = [(label, stack.enter_context(serving(env=env))) for label, env in steps]
        for _label, server in servers:
            bench.warm_up(server, warm)
        for repeat in range(bench.REPEATS):
            for label, server in servers:
                measured = {"purchases": bench.hot_purchases(server, hot, 16),
                            "sold_out": bench.sold_out_answers(server, sold_out, bench.READ_CLIENTS),
                            "stock_reads": bench.reads(server, hot.product_id, bench.READ_CLIENTS)}
                for name, result in measured.items():
                    runs[label].setdefault(name, []).append(result)
                say(f"  run {repeat + 1}/{bench.REPEATS} {label[:40]}…: " + ", ".join(
                    f"{name} {result['per_s']:,}/s" for name, result in measured.items()))
    for sale in (hot, warm, sold_out):
        close_sale(sale)
    results["steps"] = [{"step": label, "env": env, **{name: bench_report.median_of(each)
                                                        for name, each in runs[label].items()}}
                        for label, env in steps]
    results["order_rendering_us"] = order_rendering_per_call()
    results["purchase_limits_us"] = purchase_limits_per_call()
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(results))
    return results


def markdown(r: dict) -> str:
    rows = ["| step | purchases/s (16 clients) | app CPU ms / purchase | sold-out answers/s (64) | app CPU ms / sold-out "
            "| stock reads/s (64) | app CPU ms / read |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for step in r["steps"]:
        p, s, d = step["purchases"], step["sold_out"], step["stock_reads"]
        rows.append(f"| {step['step']} | {p['per_s']:,.0f} | {p['cpu_ms_per_answer']['app']:.2f} | {s['per_s']:,.0f} "
                    f"| {s['cpu_ms_per_answer']['app']:.2f} | {d['per_s']:,.0f} | {d['cpu_ms_per_answer']['app']:.2f} |")
    rendering, limits = r["order_rendering_us"], r["purchase_limits_us"]
    return "\n".join([
        "# Tuning steps",
        "",
        f"Written by `manage.py bench --steps` on {r['machine']['cores']} cores. Each row is the row above plus "
        f"one change; all rows were served at once and measured interleaved, {r['repeats']} × {r['seconds_per_load']:g} s "
        f"each, medians. Rate limits off. Load average at the start: "
        f"{', '.join(f'{x:.1f}' for x in r['machine']['load_average_at_start'])}.",
        "",
        *rows,
        "",
        "Measured in-process, per call (no switch in the server):",
        "",
        f"- the order answer: DRF's `OrderSerializer(order).data` {rendering['OrderSerializer']} µs, "
        f"`orders.api.order_answer(order)` {rendering['order_answer']} µs;",
        f"- both purchase limits against the real Redis: two django-ratelimit `get_usage` calls "
        f"{limits['django-ratelimit get_usage × 2']} µs, one script {limits['one script']} µs.",
        "",
        f"Total {r['total_seconds']} s. Raw numbers: the `.json` beside this file.",
        "",
    ])
