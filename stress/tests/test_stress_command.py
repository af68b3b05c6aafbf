"""`manage.py stress` against a real gunicorn serving the test database."""

import io
import json
from collections import Counter

import pytest
from django.core.management import CommandError, call_command

from orders.models import Order
from products.models import Product
from stress.load import NotLoopback, Tally, loopback_base_url
from stress.scenario import Sale, verdict
from tests.invariants import assert_stock_reconciles
from tests.servers import running_app


@pytest.fixture(scope="module")
def app_url(django_db_setup, django_db_blocker):
    """One gunicorn on the test database for the module (each test still gets its own data)."""
    with django_db_blocker.unblock(), running_app(workers=2) as base:
        yield base


@pytest.fixture
def stress(tmp_path):
    def run(*args) -> tuple[dict, str]:
        out, report_path = io.StringIO(), tmp_path / "report.json"
        call_command("stress", *args, "--json", str(report_path), stdout=out)
        return json.loads(report_path.read_text()), out.getvalue()

    return run


@pytest.mark.django_db(transaction=True)
def test_burst_sells_exactly_the_stock_and_passes(app_url, stress):
    report, printed = stress("--base-url", app_url, "--buyers", "40", "--stock", "10", "--concurrency", "40")
    assert (report["successes"], report["final_stock"], report["oversold"]) == (10, 0, 0)
    assert report["answers"] == {"201 ok": 10, "409 sold_out": 30}
    assert report["passed"] and all(report["checks"].values())
    assert set(report["latency_ms"]) == {"p50", "p95", "p99"}
    assert "verdict             PASS" in printed and "30  409 sold_out" in printed
    assert Order.objects.filter(product_id=report["product_id"]).count() == 10
    assert_stock_reconciles(report["product_id"])


@pytest.mark.django_db(transaction=True)
def test_same_user_multi_unit_burst(app_url, stress):
    report, _ = stress("--base-url", app_url, "--buyers", "6", "--stock", "5", "--concurrency", "6",
                       "--quantity", "2", "--same-user")
    assert (report["successes"], report["final_stock"], report["units_sold_read_back"]) == (2, 1, 4)
    assert report["answers"]["409 insufficient_stock"] == 4
    assert Order.objects.filter(product_id=report["product_id"]).values("user").distinct().count() == 1


@pytest.mark.django_db(transaction=True)
def test_sustained_mode_keeps_buying_until_the_time_is_up(app_url, stress):
    report, _ = stress("--base-url", app_url, "--buyers", "4", "--stock", "3", "--concurrency", "4",
                       "--duration", "0.5")
    assert report["mode"] == "sustained" and report["passed"]
    assert report["successes"] == 3 and report["requests"] > 4  # buyers came back after the sell-out
    assert_stock_reconciles(report["product_id"])


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["http://example.com", "http://10.0.0.5:8000", "ftp://127.0.0.1/"])
def test_refuses_to_load_other_machines(url):
    with pytest.raises(CommandError, match="only loads this machine"):
        call_command("stress", "--base-url", url, "--buyers", "1", "--stock", "1", "--concurrency", "1")
    assert not Product.objects.exists()


def test_loopback_urls_are_accepted():
    assert loopback_base_url("http://localhost:8000/") == "http://localhost:8000"
    assert loopback_base_url("http://[::1]:9/") == "http://[::1]:9"
    with pytest.raises(NotLoopback):
        loopback_base_url("http://127.0.0.1.example.com/")


def test_verdict_fails_on_5xx_and_on_oversell():
    sale = Sale(product_id=1, stock=2, tokens=["t"] * 4, reader_token="r")
    tally = Tally(answers=Counter({(201, "ok"): 2, (503, "busy"): 1, (409, "sold_out"): 1}))
    balanced = {"stock": 0, "orders": 2, "units_sold": 2}
    result = verdict(sale, tally, balanced, quantity=1)
    assert not result["passed"] and not result["checks"]["no 5xx answers"] and result["oversold"] == 0

    tally = Tally(answers=Counter({(201, "ok"): 3, (409, "sold_out"): 1}))
    result = verdict(sale, tally, {"stock": 0, "orders": 3, "units_sold": 3}, quantity=1)
    assert not result["passed"] and result["oversold"] == 1
