"""The stats numbers against orders made here: cancelled orders and lab products never count."""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from dashboard.selectors import StatsFilter, dashboard_stats, last_sale_pace, sale_performance, sales_summary
from orders.models import Order
from orders.services import cancel_order, purchase
from products.models import Product

pytestmark = pytest.mark.django_db


def backdate(order, **delta):
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(**delta))


@pytest.fixture
def shop(make_product, make_user):
    """Two products and orders of every kind."""
    alice, bob = make_user("alice"), make_user("bob")
    kettle = make_product(name="Kettle", price="10.00", stock=100)
    lamp = make_product(name="Lamp", price="25.00", stock=100)

    purchase(user=alice, product_id=kettle.pk, quantity=2)                  # today, 20.00
    purchase(user=bob, product_id=lamp.pk, quantity=1)                      # today, 25.00
    cancel_order(order=purchase(user=bob, product_id=kettle.pk, quantity=3).order)  # cancelled: never counts
    backdate(purchase(user=alice, product_id=lamp.pk, quantity=1).order, days=3)    # 3 days ago, 25.00
    backdate(purchase(user=bob, product_id=kettle.pk, quantity=1).order, days=10)   # 10 days ago, 10.00
    return {"kettle": kettle, "lamp": lamp}


def test_summary_counts_confirmed_shop_orders_in_the_window(shop, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):
        began = time.perf_counter()
        stats = sales_summary(StatsFilter(days=7))
        took_ms = (time.perf_counter() - began) * 1000
    assert stats["total_revenue"] == "70.00"
    assert stats["units_sold"] == 4
    assert stats["orders"] == 3
    assert stats["top_products"] == [
        {"id": shop["lamp"].pk, "name": "Lamp", "units_sold": 2, "revenue": "50.00"},
        {"id": shop["kettle"].pk, "name": "Kettle", "units_sold": 2, "revenue": "20.00"},
    ]
    days = stats["revenue_by_day"]
    today = timezone.localdate()
    assert [d["date"] for d in days] == [(today - timedelta(days=n)).isoformat() for n in range(6, -1, -1)]
    assert days[-1] == {"date": today.isoformat(), "units_sold": 3, "revenue": "45.00"}
    assert days[-4] == {"date": (today - timedelta(days=3)).isoformat(), "units_sold": 1, "revenue": "25.00"}
    assert sum(Decimal(d["revenue"]) for d in days) == Decimal(stats["total_revenue"])
    # The figure times the queries: something was measured, and no more than the call itself took.
    assert isinstance(stats["query_time_ms"], float) and 0 < stats["query_time_ms"] <= took_ms + 0.01


def test_a_longer_window_and_a_product_filter(shop):
    month = sales_summary(StatsFilter(days=30))
    assert (month["total_revenue"], month["units_sold"], month["orders"]) == ("80.00", 5, 4)
    assert len(month["revenue_by_day"]) == 30
    kettle = sales_summary(StatsFilter(days=30, product_id=shop["kettle"].pk))
    assert (kettle["total_revenue"], kettle["units_sold"], kettle["orders"]) == ("30.00", 3, 2)
    assert [p["id"] for p in kettle["top_products"]] == [shop["kettle"].pk]


def test_no_orders_means_zeros_not_nulls(db):
    stats = sales_summary(StatsFilter(days=1))
    assert stats["total_revenue"] == "0.00"
    assert (stats["units_sold"], stats["orders"], stats["top_products"]) == (0, 0, [])
    assert stats["revenue_by_day"] == [{"date": timezone.localdate().isoformat(), "units_sold": 0, "revenue": "0.00"}]


def test_stats_api_body_has_exactly_the_contract_shape(shop, client_for, staff):
    response = client_for(staff).get("/api/stats/?days=7")
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"total_revenue", "units_sold", "orders", "top_products", "revenue_by_day", "query_time_ms"}
    assert body["total_revenue"] == "70.00" and body["units_sold"] == 4 and body["orders"] == 3
    assert set(body["top_products"][0]) == {"id", "name", "units_sold", "revenue"}
    assert set(body["revenue_by_day"][0]) == {"date", "units_sold", "revenue"}
    assert isinstance(body["query_time_ms"], float | int)
    assert response["Cache-Control"] == "no-store"


def test_sell_through_and_time_to_sell_out(make_product, make_user):
    opened = timezone.now() - timedelta(minutes=30)
    sneaker = make_product(name="Sneaker", stock=3, price="50.00")
    Product.objects.filter(pk=sneaker.pk).update(sale_starts_at=opened)
    first = purchase(user=make_user(), product_id=sneaker.pk, quantity=2).order
    last = purchase(user=make_user(), product_id=sneaker.pk, quantity=1).order  # takes stock to 0
    Order.objects.filter(pk=first.pk).update(created_at=opened + timedelta(minutes=1))
    Order.objects.filter(pk=last.pk).update(created_at=opened + timedelta(minutes=4, seconds=30))
    halfway = make_product(name="Halfway", stock=4)
    cancel_order(order=purchase(user=make_user(), product_id=halfway.pk, quantity=4).order)  # sold out, then not
    purchase(user=make_user(), product_id=halfway.pk, quantity=2)

    rows = {row["product"].name: row for row in sale_performance(StatsFilter())}

    assert rows["Sneaker"]["units_sold"] == 3
    assert rows["Sneaker"]["sell_through"] == 100.0
    assert rows["Sneaker"]["revenue"] == "150.00"
    assert rows["Sneaker"]["time_to_sell_out"] == timedelta(minutes=4, seconds=30)
    assert rows["Halfway"]["units_sold"] == 2
    assert rows["Halfway"]["sell_through"] == 50.0
    assert rows["Halfway"]["time_to_sell_out"] is None  # stock is back above 0


def test_orders_per_minute_of_the_last_sale(make_product, make_user):
    now = timezone.now()
    older = make_product(name="Older")
    latest = make_product(name="Latest", stock=50)
    Product.objects.filter(pk=latest.pk).update(sale_starts_at=now - timedelta(minutes=20))
    latest.refresh_from_db()
    purchase(user=make_user(), product_id=older.pk)  # another sale's order: not in the pace
    for minutes in (0, 2, 2, 4):
        order = purchase(user=make_user(), product_id=latest.pk).order
        Order.objects.filter(pk=order.pk).update(created_at=latest.sale_starts_at + timedelta(minutes=minutes))
    cancelled = purchase(user=make_user(), product_id=latest.pk).order
    cancel_order(order=cancelled)

    pace = last_sale_pace(StatsFilter(), now=now)

    assert pace["product"].pk == latest.pk
    assert [point["orders"] for point in pace["series"]] == [1, 0, 2, 0, 1]  # opening to the last order
    assert (pace["orders"], pace["peak_per_minute"], pace["average_per_minute"]) == (4, 2, 0.8)


def test_the_pace_window_is_the_last_hour_of_a_long_sale(make_product, make_user):
    now = timezone.now()
    sale = make_product(stock=50)
    Product.objects.filter(pk=sale.pk).update(sale_starts_at=now - timedelta(hours=5))
    for minutes_ago in (200, 30, 0):
        order = purchase(user=make_user(), product_id=sale.pk).order
        Order.objects.filter(pk=order.pk).update(created_at=now - timedelta(minutes=minutes_ago))
    pace = last_sale_pace(StatsFilter(), now=now)
    assert len(pace["series"]) == 60
    assert pace["orders"] == 2  # the order 200 minutes ago is outside the hour


def test_the_whole_dashboard_is_a_handful_of_queries(shop, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        stats = dashboard_stats(StatsFilter(days=7))
    assert stats["units_sold"] == 4
    assert {row["product"].name for row in stats["sales"]} == {"Kettle", "Lamp"}


def test_dashboard_page_shows_the_same_numbers(shop, client, staff):
    client.force_login(staff)
    html = client.get("/dashboard/?days=7").content.decode()
    assert 'data-kpi="revenue">$70.00<' in html
    assert 'data-kpi="units">4<' in html
    assert 'data-kpi="orders">3<' in html
    assert "Lab scratch" not in html
