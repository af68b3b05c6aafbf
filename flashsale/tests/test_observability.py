"""Prometheus metrics at /metrics (multiprocess, real gunicorn) and request ids in the logs."""

import json
import logging
import re

import httpx
import pytest
from rest_framework.authtoken.models import Token

from flashsale.json_logs import JsonFormatter, OneLineErrors
from flashsale.request_id import RequestIdFilter
from tests.servers import running_app


def _sample(text: str, name: str, labels: str = "") -> float | None:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_metrics_add_up_across_gunicorn_workers(make_user, make_product):
    shopper = make_user()
    token = Token.objects.create(user=shopper).key
    product = make_product(stock=2)
    sold_out = make_product(stock=0)
    headers = {"Authorization": f"Token {token}"}
    with running_app(workers=2) as base, httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        answers = [client.post("/api/orders/", json={"product_id": product.pk}).status_code for _ in range(3)]
        answers.append(client.post("/api/orders/", json={"product_id": sold_out.pk}).status_code)
        # Several scrapes land on different workers; each must see every worker's samples.
        scrapes = [client.get("/metrics") for _ in range(4)]
    assert answers == [201, 201, 409, 409]
    for scrape in scrapes:
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain")
        text = scrape.text
        assert _sample(text, "flashsale_purchases_total", '{code="created"}') == 2
        assert _sample(text, "flashsale_purchases_total", '{code="sold_out"}') == 2
        timed_purchases = _sample(text, "flashsale_purchase_duration_seconds_count")  # a count, not a time
        assert timed_purchases == 4
        # Only the two winners reached the row lock; the losers were turned away before it.
        assert _sample(text, "flashsale_row_lock_wait_seconds_count") == 2
        assert _sample(text, "flashsale_stock", f'{{product_id="{product.pk}",slug="{product.slug}"}}') == 0
        assert f'product_id="{sold_out.pk}"' in text  # active (window open) though sold out


@pytest.mark.django_db
def test_every_log_line_of_a_request_carries_its_request_id(client, settings):
    lines = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = Collect()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        response = client.get("/api/orders/not-a-page/nope/", HTTP_X_REQUEST_ID="edge-1234")
        logging.getLogger("after").warning("outside any request")
    finally:
        root.removeHandler(handler)
    assert response.status_code == 404
    assert response["X-Request-ID"] == "edge-1234"
    entries = [json.loads(line) for line in lines]
    in_request = [entry for entry in entries if entry["logger"] != "after"]
    assert in_request, "the 404 should have been logged"
    assert {entry["request_id"] for entry in in_request} == {"edge-1234"}
    assert entries[-1]["request_id"] == "-"


@pytest.mark.django_db
def test_a_hostile_request_id_is_replaced_not_echoed(client):
    response = client.get("/api/health/", HTTP_X_REQUEST_ID='x" \n{"level":"forged"}')
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_redis_errors_are_logged_in_one_line_not_a_traceback():
    try:
        raise ConnectionError("Error 2 connecting to /tmp/redis.sock")
    except ConnectionError:
        import sys

        record = logging.LogRecord("django_redis.cache", logging.ERROR, __file__, 1, "Exception ignored", None,
                                   sys.exc_info())
    assert OneLineErrors().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "Exception ignored: Error 2 connecting to /tmp/redis.sock"
    assert "exception" not in line


def test_expected_sale_refusals_are_not_logged_but_other_errors_are(client, settings, make_product, make_user):
    """409/429 are the sale working (and counted in /metrics); a 404 is still a log line."""
    from rest_framework.test import APIClient

    seen = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record)

    handler = Collect()
    request_logger = logging.getLogger("django.request")
    request_logger.addHandler(handler)
    try:
        product = make_product(stock=0)
        api = APIClient()
        api.force_authenticate(make_user())
        assert api.post("/api/orders/", {"product_id": product.pk}, format="json").status_code == 409
        assert api.get("/api/orders/424242/").status_code == 404
    finally:
        request_logger.removeHandler(handler)
    assert [r.status_code for r in seen if hasattr(r, "status_code")] == [404]


def test_each_forked_process_writes_its_own_metrics_file(tmp_path):
    """The pid the multiprocess values use is remembered, and renewed in every forked child;
    the request ids' generator is reseeded there too."""
    import subprocess
    import sys
    from pathlib import Path

    script = """
import os, sys
from flashsale import metrics
from flashsale.request_id import request_id_for
metrics._purchases_answered("created").inc()
read, write = os.pipe()
child = os.fork()
if child == 0:
    metrics._purchases_answered("created").inc()
    os.write(write, request_id_for("").encode())
    os._exit(0 if metrics._this_process() == os.getpid() else 1)
_, status = os.waitpid(child, 0)
assert status == 0 and metrics._this_process() == os.getpid()
assert os.read(read, 64).decode() != request_id_for("")  # fresh ids differ across forked workers
print(os.getpid(), child)
"""
    done = subprocess.run([sys.executable, "-c", script], env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
                                                             "PATH": "/usr/bin:/bin"},
                          cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    parent, child = done.stdout.split()
    assert {path.name for path in tmp_path.iterdir()} >= {f"counter_{parent}.db", f"counter_{child}.db"}
