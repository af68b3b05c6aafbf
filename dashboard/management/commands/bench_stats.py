"""Benchmark the stats selector at scale, leaving nothing behind.

Inside one transaction: a few scratch products and shoppers, N orders spread over the
stats window of the last 7 days (every 20th cancelled), ANALYZE, then the median of
several timed runs of the selector behind /api/stats/ (and of the whole dashboard),
then a rollback.
"""

import json
import statistics
import time
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from dashboard.selectors import StatsFilter, dashboard_stats, sales_summary
from orders.models import Order, OrderStatus
from products.models import Product
from products.services import create_product

PRODUCTS = 4
SHOPPERS = 200
DAYS = 7


class Rollback(Exception):
    """Raised at the end on purpose so the atomic block rolls everything back."""


class Command(BaseCommand):
    help = "Time the stats selector against N scratch orders inside a transaction that is rolled back."

    def add_arguments(self, parser):
        parser.add_argument("--orders", type=int, default=100_000)
        parser.add_argument("--runs", type=int, default=9, help="timed runs; the median is reported")
        parser.add_argument("--json", dest="json_path", help="also write the result to this file")

    def handle(self, *args, orders, runs, json_path, **options):
        if orders < 1 or runs < 1:
            raise CommandError("--orders and --runs must be at least 1")
        result = {}
        try:
            with transaction.atomic():
                seed_started = time.perf_counter()
                self._seed(orders)
                with connection.cursor() as cursor:
                    cursor.execute(f"ANALYZE {Order._meta.db_table}")
                    cursor.execute(f"ANALYZE {Product._meta.db_table}")
                seeded_s = time.perf_counter() - seed_started
                stats_filter = StatsFilter(days=DAYS)
                summary_ms = _timed(lambda: sales_summary(stats_filter), runs)
                dashboard_ms = _timed(lambda: dashboard_stats(stats_filter), runs)
                check = sales_summary(stats_filter)
                result = {
                    "orders": orders,
                    "runs": runs,
                    "stats_median_ms": round(statistics.median(summary_ms), 2),
                    "stats_min_ms": round(min(summary_ms), 2),
                    "stats_max_ms": round(max(summary_ms), 2),
                    "dashboard_median_ms": round(statistics.median(dashboard_ms), 2),
                    "counted_orders": check["orders"],
                    "seed_seconds": round(seeded_s, 2),
                    "postgres": connection.cursor().connection.info.server_version,
                }
                raise Rollback()
        except Rollback:
            pass
        self.stdout.write(
            f"stats over {orders:,} orders: median {result['stats_median_ms']} ms "
            f"(min {result['stats_min_ms']}, max {result['stats_max_ms']}, {runs} runs); "
            f"whole dashboard median {result['dashboard_median_ms']} ms. Rolled back: nothing left behind."
        )
        if json_path:
            with open(json_path, "w") as handle:
                json.dump(result, handle, indent=2)
                handle.write("\n")

    def _seed(self, count: int) -> None:
        now = timezone.now()
        span = (now - StatsFilter(days=DAYS).since(now)).total_seconds() - 1  # all inside the stats window
        stamp = now.strftime("%Y%m%d%H%M%S%f")
        products = [
            create_product(name=f"Bench product {n}", slug=f"bench-{stamp}-{n}", price=Decimal("10.00") + n,
                           stock=count * 3, sale_starts_at=now - timedelta(days=DAYS))
            for n in range(PRODUCTS)
        ]
        users = get_user_model().objects.bulk_create(
            get_user_model()(username=f"bench-{stamp}-{n}", password="!") for n in range(SHOPPERS)
        )
        # One INSERT … SELECT over generate_series: 100,000 rows in well under a second.
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {Order._meta.db_table}
                    (user_id, product_id, quantity, unit_price, status, remaining_stock, created_at,
                     cancelled_at, idempotency_key, request_hash)
                SELECT users[1 + i %% cardinality(users)], products[1 + i %% cardinality(products)],
                       1 + i %% 3, prices[1 + i %% cardinality(products)],
                       CASE WHEN i %% 20 = 0 THEN %s ELSE %s END,
                       greatest(%s - i, 0),
                       %s - make_interval(secs => (i::float8 / %s) * %s),
                       CASE WHEN i %% 20 = 0 THEN %s END, NULL, ''
                FROM generate_series(1, %s) AS i,
                     (SELECT %s::bigint[] AS users, %s::bigint[] AS products, %s::numeric[] AS prices) AS ids
                """,
                [OrderStatus.CANCELLED, OrderStatus.CONFIRMED, count, now, count, span, now,
                 count, [u.pk for u in users], [p.pk for p in products], [p.price for p in products]],
            )


def _timed(run, runs: int) -> list[float]:
    run()  # warm the plan cache and buffers once; not counted
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return times
