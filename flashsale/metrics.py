"""Prometheus metrics, served at /metrics by prometheus-client.

Under gunicorn every worker is its own process, so the counters live in prometheus-client's
multiprocess mode: each worker writes its samples to mmap'd files in
PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py makes a fresh one per master unless the env
names one) and a scrape of any worker adds them all up. Without that variable (tests,
manage.py) the metrics are plain per-process ones.

Stock per active sale is not a counter anyone updates: it is read from the database at
scrape time, so it is always the truth and costs nothing on the purchase path.
"""

import contextlib
import os
import time

from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

_pid = os.getpid()


def _this_process() -> int:
    """os.getpid(), remembered: prometheus-client's multiprocess values ask for the pid on
    every increment (to notice a fork), and that system call was ~3 % of a worker's CPU in a
    burst. Refreshed in every child at fork, so it still tells processes apart."""
    return _pid


def _forked() -> None:
    global _pid  # noqa: PLW0603 (this process's id, reset in each forked child)
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Before any metric below makes its values (prometheus-client's documented hook).
    values.ValueClass = values.MultiProcessValue(process_identifier=_this_process)

PURCHASES = Counter(
    "flashsale_purchases",
    "Purchase requests (POST /api/orders/) by outcome: `created` or the error code answered.",
    ["code"],
)
PURCHASE_SECONDS = Histogram(
    "flashsale_purchase_duration_seconds",
    "Time to answer a purchase request, from the view's start to its response.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ROW_LOCK_WAIT_SECONDS = Histogram(
    "flashsale_row_lock_wait_seconds",
    "Time a purchase waited to get the product's row lock (includes the locking SELECT itself).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3, 10),
)


def purchase_outcome(response) -> str:
    if response.status_code == 201:
        return "created"
    data = getattr(response, "data", None)
    if isinstance(data, dict) and isinstance(data.get("code"), str):
        return data["code"]
    return f"http_{response.status_code}"


@contextlib.contextmanager
def purchase_request():
    """Around a purchase view: yields a setter for the response, counts it and times it."""
    started = time.perf_counter()
    seen = {}
    try:
        yield seen.setdefault
    except BaseException as exc:
        PURCHASE_SECONDS.observe(time.perf_counter() - started)
        if isinstance(exc, Exception):
            _purchases_answered("server_error").inc()
        raise
    purchase_answered(seen["response"], started=started)


def purchase_answered(response, *, started: float) -> None:
    """What `purchase_request` records, for an answer made without it (`started`: perf_counter())."""
    PURCHASE_SECONDS.observe(time.perf_counter() - started)
    _purchases_answered(purchase_outcome(response)).inc()


_PURCHASES_BY_CODE: dict = {}


def _purchases_answered(code: str):
    """PURCHASES' child for a code, looked up once (labels() validates and locks on every call)."""
    child = _PURCHASES_BY_CODE.get(code)
    if child is None:
        child = _PURCHASES_BY_CODE[code] = PURCHASES.labels(code=code)
    return child


@contextlib.contextmanager
def row_lock_wait():
    """The only instrumentation inside the critical section: one clock read each side."""
    started = time.perf_counter()
    try:
        yield
    finally:
        ROW_LOCK_WAIT_SECONDS.observe(time.perf_counter() - started)


class ActiveSaleStock:
    """Collector: `flashsale_stock{product_id,slug}` for every sale that is active now."""

    def collect(self):
        from flashsale.api_errors import DATABASE_DOWN
        from products.models import Product

        gauge = GaugeMetricFamily("flashsale_stock", "Units in stock per active sale.", labels=["product_id", "slug"])
        active = Product.objects.in_window().values_list("pk", "slug", "stock")
        try:
            rows = list(active)
        except DATABASE_DOWN:
            rows = []  # the database is down: the other metrics still scrape, this one is absent
        for pk, slug, stock in rows:
            gauge.add_metric([str(pk), slug], stock)
        yield gauge


class WaitingRoomLines:
    """Collector: per product with a waiting room, its line's length, admitted count and rate.

    Read from Redis at scrape time, like the stock; absent while Redis is down.
    """

    def collect(self):
        from flashsale.api_errors import DATABASE_DOWN
        from waiting_room.selectors import line_figures

        labels = ["product_id", "slug"]
        length = GaugeMetricFamily("flashsale_waiting_room_length", "Tickets in the line, admitted ones included.",
                                   labels=labels)
        admitted = GaugeMetricFamily("flashsale_waiting_room_admitted", "Tickets the line has admitted.",
                                     labels=labels)
        rate = GaugeMetricFamily("flashsale_waiting_room_admit_per_minute", "The line's admission rate per minute.",
                                 labels=labels)
        try:
            rows = line_figures() or []
        except DATABASE_DOWN:
            rows = []
        for row in rows:
            key = [str(row["id"]), row["slug"]]
            length.add_metric(key, row["length"])
            admitted.add_metric(key, row["admitted"])
            rate.add_metric(key, row["admit_per_minute"])
        yield from (length, admitted, rate)


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        for collector in (PURCHASES, PURCHASE_SECONDS, ROW_LOCK_WAIT_SECONDS):
            registry.register(collector)
    registry.register(ActiveSaleStock())
    registry.register(WaitingRoomLines())
    return registry


def metrics_view(request):
    """GET /metrics in Prometheus' text format (keep it off the public proxy, see docs)."""
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
