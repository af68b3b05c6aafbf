"""Sales numbers for staff: the API's `/api/stats/` and the dashboard read the same functions.

Every number counts confirmed orders only: cancelled orders never count (the race lab
keeps its scratch rows in a table of its own). Each function is one to three aggregate/annotate
queries, so the whole dashboard is a handful of queries whatever the number of orders.
"""

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import TruncDate, TruncMinute
from django.utils import timezone

from orders.models import Order, OrderStatus
from products.errors import ProductNotFound
from products.models import Product

MAX_DAYS = 366
TOP_PRODUCTS = 5
RECENT_ORDERS = 10
LAST_SALE_MINUTES = 60  # the per-minute chart covers at most an hour of the last sale

CENTS = Decimal("0.01")


@dataclass(frozen=True)
class StatsFilter:
    """Which orders count: the last `days` calendar days (today included), optionally one product."""

    days: int = 7
    product_id: int | None = None

    def since(self, now: datetime) -> datetime:
        today = timezone.localdate(now)
        start = today - timedelta(days=self.days - 1)
        return timezone.make_aware(datetime.combine(start, datetime.min.time()))


def money(value) -> str:
    return str((value or Decimal("0")).quantize(CENTS))


def counted_orders(stats_filter: StatsFilter, now: datetime) -> QuerySet[Order]:
    """Confirmed orders of shop products inside the filter's window."""
    orders = Order.objects.filter(status=OrderStatus.CONFIRMED, created_at__gte=stats_filter.since(now))
    if stats_filter.product_id is not None:
        orders = orders.filter(product_id=stats_filter.product_id)
    return orders.order_by()


def check_product(product_id: int) -> None:
    if not Product.objects.filter(pk=product_id).exists():
        raise ProductNotFound()


def sales_summary(stats_filter: StatsFilter, *, now: datetime | None = None) -> dict:
    """The contract's `/api/stats/` body, with the time it took.

    One pass over the orders, grouped by day, product and unit price with integer sums
    only; the totals, top products and days are folded from those few rows here, and
    revenue is units x price in exact decimals (cheaper than numeric math per order row).
    A second, tiny query names the top products.
    """
    now = now or timezone.now()
    started = time.perf_counter()
    groups = (
        counted_orders(stats_filter, now)
        .annotate(day=TruncDate("created_at"))
        .values("day", "product_id", "unit_price")
        .annotate(units=Sum("quantity"), orders=Count("id"))
    )
    days = {day: _Tally() for day in _calendar(stats_filter.since(now).date(), timezone.localdate(now))}
    products: dict[int, _Tally] = {}
    total = _Tally()
    for row in groups:
        revenue = row["units"] * row["unit_price"]
        for tally in (total, days.setdefault(row["day"], _Tally()), products.setdefault(row["product_id"], _Tally())):
            tally.add(row["units"], revenue, row["orders"])
    top = sorted(products.items(), key=lambda item: (-item[1].revenue, -item[1].units, item[0]))[:TOP_PRODUCTS]
    names = dict(Product.objects.filter(pk__in=[product_id for product_id, _ in top]).values_list("id", "name"))
    body = {
        "total_revenue": money(total.revenue),
        "units_sold": total.units,
        "orders": total.orders,
        "top_products": [
            {"id": product_id, "name": names.get(product_id, ""), "units_sold": tally.units,
             "revenue": money(tally.revenue)}
            for product_id, tally in top
        ],
        "revenue_by_day": [
            {"date": day.isoformat(), "units_sold": tally.units, "revenue": money(tally.revenue)}
            for day, tally in sorted(days.items())
        ],
    }
    body["query_time_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return body


@dataclass
class _Tally:
    units: int = 0
    revenue: Decimal = Decimal("0")
    orders: int = 0

    def add(self, units: int, revenue: Decimal, orders: int) -> None:
        self.units += units
        self.revenue += revenue
        self.orders += orders


def _calendar(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def sale_performance(stats_filter: StatsFilter) -> list[dict]:
    """Per sale, over its whole life: units sold, revenue, sell-through, opening to sell-out.

    Two queries: integer sums per product and price (as in `sales_summary`), and the
    products with the moment of the first still-confirmed order that left their stock at 0
    (if that very order is cancelled later, the next sell-out counts).
    """
    sold = Order.objects.filter(status=OrderStatus.CONFIRMED)
    sold_out_at = (
        Order.objects.filter(product=OuterRef("pk"), status=OrderStatus.CONFIRMED, remaining_stock=0)
        .order_by("created_at")
        .values("created_at")[:1]
    )
    products = Product.objects.annotate(sold_out_at=Subquery(sold_out_at))
    if stats_filter.product_id is not None:
        sold = sold.filter(product_id=stats_filter.product_id)
        products = products.filter(pk=stats_filter.product_id)
    tallies: dict[int, _Tally] = {}
    for row in sold.order_by().values("product_id", "unit_price").annotate(units=Sum("quantity"), orders=Count("id")):
        tallies.setdefault(row["product_id"], _Tally()).add(row["units"], row["units"] * row["unit_price"], row["orders"])
    rows = []
    for product in products.order_by("-sale_starts_at", "-id"):
        tally = tallies.get(product.pk, _Tally())
        time_to_sell_out = None
        if product.stock == 0 and product.sold_out_at and product.sale_starts_at:
            time_to_sell_out = max(product.sold_out_at - product.sale_starts_at, timedelta(0))
        rows.append({
            "product": product,
            "units_sold": tally.units,
            "revenue": money(tally.revenue),
            "sell_through": round(tally.units / product.units_received * 100, 1) if product.units_received else 0.0,
            "time_to_sell_out": time_to_sell_out,
        })
    return rows


def last_sale_pace(stats_filter: StatsFilter, *, now: datetime) -> dict | None:
    """Orders per minute in the latest sale that has opened (three small queries).

    The window is the hour of that sale up to its latest order: for a flash sale that is
    the rush from opening to sell-out; for a long sale, its most recent hour of orders.
    """
    products = Product.objects.filter(sale_starts_at__lte=now)
    if stats_filter.product_id is not None:
        products = products.filter(pk=stats_filter.product_id)
    sale = products.order_by("-sale_starts_at", "-id").only("id", "name", "sale_starts_at").first()
    if sale is None:
        return None
    confirmed = Order.objects.filter(product=sale, status=OrderStatus.CONFIRMED, created_at__gte=sale.sale_starts_at)
    latest = confirmed.order_by("-created_at").values_list("created_at", flat=True).first()
    if latest is None:
        return {"product": sale, "series": [], "orders": 0, "peak_per_minute": 0, "average_per_minute": 0.0,
                "window_start": None}
    last_minute = latest.replace(second=0, microsecond=0)
    first_minute = max(sale.sale_starts_at.replace(second=0, microsecond=0),
                       last_minute - timedelta(minutes=LAST_SALE_MINUTES - 1))
    per_minute = (
        confirmed.filter(created_at__gte=first_minute)
        .order_by()
        .annotate(minute=TruncMinute("created_at"))
        .values("minute")
        .annotate(orders=Count("id"))
    )
    buckets = {row["minute"]: row["orders"] for row in per_minute}
    span = int((last_minute - first_minute).total_seconds() // 60) + 1
    series = [{"minute": first_minute + timedelta(minutes=n), "orders": 0} for n in range(span)]
    for point in series:
        point["orders"] = buckets.get(point["minute"], 0)
    total = sum(point["orders"] for point in series)
    return {
        "product": sale,
        "series": series,
        "orders": total,
        "peak_per_minute": max(point["orders"] for point in series),
        "average_per_minute": round(total / span, 1),
        "window_start": first_minute,
    }


def recent_orders(stats_filter: StatsFilter, *, limit: int = RECENT_ORDERS) -> list[Order]:
    orders = Order.objects.select_related("product", "user")
    if stats_filter.product_id is not None:
        orders = orders.filter(product_id=stats_filter.product_id)
    return list(orders.order_by("-created_at", "-id")[:limit])


def dashboard_stats(stats_filter: StatsFilter, *, now: datetime | None = None) -> dict:
    """Everything the staff dashboard shows; `query_time_ms` covers all of it."""
    now = now or timezone.now()
    started = time.perf_counter()
    summary = sales_summary(stats_filter, now=now)
    stats = {
        **summary,
        "sales": sale_performance(stats_filter),
        "last_sale": last_sale_pace(stats_filter, now=now),
        "recent_orders": recent_orders(stats_filter),
        "since": stats_filter.since(now),
    }
    stats["query_time_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return stats


def product_choices() -> list[tuple[int, str]]:
    return list(Product.objects.order_by("name").values_list("id", "name"))
