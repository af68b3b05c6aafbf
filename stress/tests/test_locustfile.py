"""The Locust file runs headless for a few seconds against a real gunicorn and sells exactly the stock."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from products.models import Product
from shoppers.services import create_shoppers
from tests.invariants import assert_stock_reconciles
from tests.servers import ROOT, running_app

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_locust_burst_sells_exactly_the_stock(make_product, tmp_path):
    product = make_product(stock=5)
    tokens = tmp_path / "tokens.csv"
    tokens.write_text("".join(f"{name},{key}\n" for name, key in create_shoppers(count=15, prefix="locust")))
    locust = str(Path(sys.executable).with_name("locust"))
    with running_app(workers=2) as base:
        finished = subprocess.run(
            [locust, "-f", "stress/locustfile.py", "--headless", "--host", base, "--users", "15",
             "--spawn-rate", "15", "--run-time", "4s", "--only-summary", "--stop-timeout", "2", "Buyer"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
            env={**os.environ, "FLASHSALE_TOKENS": str(tokens), "FLASHSALE_PRODUCT_ID": str(product.pk)},
        )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "POST /api/orders/" in finished.stderr + finished.stdout
    product = Product.objects.get(pk=product.pk)
    assert product.stock == 0
    assert product.orders.count() == 5
    assert_stock_reconciles(product.pk)


def test_locust_refuses_other_hosts(tmp_path):
    locust = str(Path(sys.executable).with_name("locust"))
    finished = subprocess.run(
        [locust, "-f", "stress/locustfile.py", "--headless", "--host", "http://example.com", "--users", "1",
         "--run-time", "2s", "--only-summary"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "FLASHSALE_TOKENS": "", "FLASHSALE_PRODUCT_ID": "1"},
    )
    assert finished.returncode != 0
    assert "only loads this machine" in finished.stderr
