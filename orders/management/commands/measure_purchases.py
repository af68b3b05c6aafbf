"""`manage.py measure_purchases`: the purchase service's own cost, in-process, no HTTP.

N threads (each with its own connection) buy one hot product straight through
`orders.services.purchase`, the way a threaded or gevent worker's requests would; it
prints purchases/s, SQL statements per purchase, process CPU per purchase and, where the
checkout has group commit, the sizes of the groups formed. `--sold-out` measures the
losers of a sold-out product instead. Only for comparing two checkouts on one machine in
one sitting (docs/decisions/group-commit.md); `make bench` is the real benchmark.
"""

import itertools
import json
import statistics
import threading
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import connection
from django.utils import timezone

from flashsale.errors import DomainError
from orders.models import Order
from orders.services import purchase
from products.models import Product
from products.services import create_product
from shoppers.services import create_shoppers


class Command(BaseCommand):
    help = "Measure purchase() in-process: N threads on one hot product (adds and then removes its own data)."

    def add_arguments(self, parser):
        parser.add_argument("--threads", type=int, default=16)
        parser.add_argument("--purchases", type=int, default=2000)
        parser.add_argument("--rounds", type=int, default=3, help="report the median round")
        parser.add_argument("--sold-out", action="store_true", help="every buyer is a loser of a sold-out product")

    def handle(self, *args, threads, purchases, rounds, sold_out, **options):
        stamp = timezone.now().strftime("%Y%m%d%H%M%S%f")
        create_shoppers(count=purchases, prefix=f"measure-{stamp}")
        users = list(get_user_model().objects.filter(username__startswith=f"measure-{stamp}-").order_by("id"))
        try:
            results = [self._round(users, threads, sold_out, f"{stamp}-{n}") for n in range(rounds)]
        finally:
            get_user_model().objects.filter(username__startswith=f"measure-{stamp}-").delete()
        middle = sorted(results, key=lambda r: r["per_second"])[len(results) // 2]
        middle["rounds_per_second"] = [r["per_second"] for r in results]
        self.stdout.write(json.dumps(middle))

    def _round(self, users, threads, sold_out, name):
        product = create_product(name=f"Measure {name}", price="1.00", stock=0 if sold_out else len(users),
                                 sale_starts_at=timezone.now(), sale_ends_at=None)
        try:
            return self._race(product, users, threads)
        finally:
            Order.objects.filter(product=product).delete()
            Product.objects.filter(pk=product.pk).delete()

    def _race(self, product, users, threads):
        try:
            from orders import group_commit
        except ImportError:  # a checkout from before group commit
            group_commit = None
        if group_commit is not None:
            group_commit.reset_group_sizes()
        next_buyer = iter(users).__next__
        take = threading.Lock()
        statements = itertools.count()
        outcomes: dict[str, int] = {}
        latencies: list[float] = []

        def count(execute, sql, params, many, context):
            next(statements)
            return execute(sql, params, many, context)

        def buyer():
            with connection.execute_wrapper(count):
                while True:
                    with take:
                        try:
                            user = next_buyer()
                        except StopIteration:
                            break
                    started = time.perf_counter()
                    try:
                        purchase(user=user, product_id=product.pk)
                        code = "created"
                    except DomainError as refusal:
                        code = refusal.code
                    latencies.append(time.perf_counter() - started)
                    with take:
                        outcomes[code] = outcomes.get(code, 0) + 1
            connection.close()

        workers = [threading.Thread(target=buyer) for _ in range(threads)]
        cpu, wall = time.process_time(), time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        answers = sum(outcomes.values())
        latencies.sort()
        sizes = dict(sorted(group_commit.group_sizes().items())) if group_commit is not None else {}
        return {
            "threads": threads,
            "answers": answers,
            "outcomes": outcomes,
            "per_second": round(answers / wall),
            "statements_per_answer": round((next(statements)) / answers, 2),
            "cpu_ms_per_answer": round(cpu * 1000 / answers, 3),
            "p50_ms": round(statistics.median(latencies) * 1000, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
            "transactions": sum(sizes.values()) if sizes else None,
            "group_sizes": sizes,
        }
