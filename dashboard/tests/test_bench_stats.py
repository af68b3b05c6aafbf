"""bench_stats measures inside one transaction and leaves nothing behind."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from orders.models import Order
from products.models import Product

pytestmark = pytest.mark.django_db


def test_bench_stats_reports_and_rolls_back(tmp_path, capsys):
    before = (Order.objects.count(), Product.objects.count(), get_user_model().objects.count())
    report = tmp_path / "stats.json"
    call_command("bench_stats", "--orders", "500", "--runs", "2", "--json", str(report))
    result = json.loads(report.read_text())
    assert result["orders"] == 500
    assert result["counted_orders"] == 475  # every 20th order is cancelled
    assert result["stats_median_ms"] > 0
    assert "Rolled back" in capsys.readouterr().out
    assert (Order.objects.count(), Product.objects.count(), get_user_model().objects.count()) == before
