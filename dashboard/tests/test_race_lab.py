"""The race lab: the unsafe strategy oversells, the shop's two safe ones never do."""

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from dashboard.models import LabShelf
from dashboard.race_lab import RaceResult, run_race
from products.models import Product

pytestmark = pytest.mark.django_db(transaction=True)


def test_unsafe_read_then_write_oversells():
    result = run_race(strategy="unsafe", buyers=60, stock=10)
    assert result.sold > 10 and result.oversold > 0


@pytest.mark.parametrize("strategy", ["locked", "conditional"])
def test_safe_strategies_sell_exactly_the_stock(strategy):
    result = run_race(strategy=strategy, buyers=60, stock=10)
    assert (result.sold, result.final_stock, result.oversold) == (10, 0, 0)


def test_lab_shelves_are_scratch_and_never_touch_the_shop(make_product):
    product = make_product(stock=3)
    run_race(strategy="conditional", buyers=5, stock=2)
    assert not LabShelf.objects.exists()
    assert list(Product.objects.values_list("pk", "stock")) == [(product.pk, 3)]


def test_oversold_counts_units_sold_beyond_the_stock():
    result = RaceResult(strategy="unsafe", buyers=40, stock=15, sold=30, final_stock=4, seconds=1.0)
    assert result.oversold == 15  # 30 sold, 15 existed
    assert result.lost_updates == 19  # only 11 units ever left the shelf


def test_command_exits_1_when_a_strategy_oversold(tmp_path):
    out, report = io.StringIO(), tmp_path / "lab.json"
    with pytest.raises(CommandError, match="oversold: unsafe") as caught:
        call_command("race_lab", "--buyers", "45", "--stock", "5", "--json", str(report), stdout=out)
    assert caught.value.returncode == 1
    rows = {row["strategy"]: row for row in json.loads(report.read_text())}
    assert rows["unsafe"]["oversold"] > 0
    assert rows["locked"]["sold"] == rows["conditional"]["sold"] == 5
    assert out.getvalue().splitlines()[0].split() == ["strategy", "buyers", "stock", "sold", "left", "oversold",
                                                      "time", "buyers/s"]


def test_command_exits_0_for_a_safe_strategy():
    out = io.StringIO()
    call_command("race_lab", "--strategy", "locked", "--buyers", "20", "--stock", "5", stdout=out)
    assert out.getvalue().splitlines()[1].split()[:6] == ["locked", "20", "5", "5", "0", "0"]


def test_command_refuses_out_of_range_input():
    with pytest.raises(CommandError, match="--buyers"):
        call_command("race_lab", "--buyers", "0", "--stock", "5")


def test_page_is_for_staff_only(make_user):
    url = reverse("dashboard:race-lab")
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "login" in anonymous["Location"]
    shopper = Client()
    shopper.force_login(make_user())
    assert shopper.get(url).status_code == 403
    assert shopper.post(url, {"buyers": 10, "stock": 2, "strategies": ["unsafe"]}).status_code == 403


def test_staff_run_the_three_strategies_side_by_side(make_user):
    client = Client()
    client.force_login(make_user(staff=True))
    assert client.get(reverse("dashboard:race-lab")).status_code == 200
    response = client.post(reverse("dashboard:race-lab"),
                           {"buyers": 45, "stock": 5, "strategies": ["unsafe", "locked", "conditional"]})
    assert response.status_code == 200
    results = {result.strategy: result for result in response.context["results"]}
    assert results["unsafe"].oversold > 0
    assert results["locked"].oversold == results["conditional"].oversold == 0
    assert b"sold units that did not exist" in response.content
