"""The race lab: one stock race run three ways, to show why the shop locks the row.

Each run makes a scratch product (`is_lab=True`, never listed, never sold by the shop)
and lets `buyers` real threads, each on its own database connection, try to take one
unit. At most SESSIONS threads run at once (the CI PostgreSQL allows 100 connections).

- `unsafe`: read the stock, decrement in Python, write the number back. Every thread of
  a round reads before any writes (a barrier), so the lost updates show every time.
  This strategy exists only here and only ever touches lab rows.
- `locked`: the shop's way, `SELECT ... FOR NO KEY UPDATE` then an `F()` decrement.
- `conditional`: one `UPDATE ... SET stock = stock - 1 WHERE stock >= 1`.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import asdict, dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import F

from products import lock_objects
from products.models import Product

STRATEGIES = ("unsafe", "locked", "conditional")
SESSIONS = 40
MAX_BUYERS = 5000
MAX_STOCK = 100_000


@dataclass(frozen=True)
class RaceResult:
    strategy: str
    buyers: int
    stock: int  # units at the start
    sold: int  # buyers who were told they got a unit
    final_stock: int
    seconds: float

    @property
    def oversold(self) -> int:
        """Units sold that never existed: sales beyond the stock, or beyond what left the shelf."""
        return max(0, self.sold - self.stock, self.sold - (self.stock - self.final_stock))

    @property
    def per_second(self) -> float:
        return self.buyers / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "oversold": self.oversold, "per_second": round(self.per_second, 1)}


def _unsafe(product_id: int, between_read_and_write: threading.Barrier) -> bool:
    lab = Product.objects.filter(pk=product_id, is_lab=True)
    seen = lab.values_list("stock", flat=True).get()
    between_read_and_write.wait()  # let every racer of this round read the same number first
    if seen < 1:
        return False
    lab.update(stock=seen - 1)  # read-then-write: the bug this lab exists to show
    return True


def _locked(product_id: int, _barrier) -> bool:
    with transaction.atomic():
        product = lock_objects.lab_product_for_update(product_id)
        if product.stock < 1:
            return False
        Product.objects.filter(pk=product.pk).update(stock=F("stock") - 1)
        return True


def _conditional(product_id: int, _barrier) -> bool:
    return Product.objects.filter(pk=product_id, is_lab=True, stock__gte=1).update(stock=F("stock") - 1) == 1


_ATTEMPTS = {"unsafe": _unsafe, "locked": _locked, "conditional": _conditional}


def run_race(*, strategy: str, buyers: int, stock: int) -> RaceResult:
    """Race `buyers` threads for `stock` units of a fresh lab product with one strategy."""
    if strategy not in _ATTEMPTS:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    if not 1 <= buyers <= MAX_BUYERS or not 0 <= stock <= MAX_STOCK:
        raise ValueError(f"buyers must be 1..{MAX_BUYERS:,} and stock 0..{MAX_STOCK:,}")
    product = Product.objects.create(
        name=f"Race lab ({strategy})", slug=f"race-lab-{uuid.uuid4().hex[:12]}", price=Decimal("1.00"),
        stock=stock, units_received=stock, is_lab=True,
    )
    try:
        sold, seconds = _race(_ATTEMPTS[strategy], product.pk, buyers)
        final_stock = Product.objects.filter(pk=product.pk).values_list("stock", flat=True).get()
    finally:
        Product.objects.filter(pk=product.pk, is_lab=True).delete()  # scratch: nothing refers to it
    return RaceResult(strategy=strategy, buyers=buyers, stock=stock, sold=sold, final_stock=final_stock,
                      seconds=seconds)


def _race(attempt, product_id: int, buyers: int) -> tuple[int, float]:
    """SESSIONS threads take the buyers in rounds; returns (units sold, seconds)."""
    sessions = min(SESSIONS, buyers)
    rounds = -(-buyers // sessions)
    start = threading.Barrier(sessions + 1, timeout=60)
    # Threads without a buyer in the last round still meet the barrier, so no one waits forever.
    between = threading.Barrier(sessions, timeout=60)
    sold = [0] * sessions
    errors: list[BaseException] = []

    def racer(slot: int) -> None:
        try:
            connection.ensure_connection()  # connect before the clock starts
            start.wait()
            for round_ in range(rounds):
                if round_ * sessions + slot < buyers:
                    sold[slot] += attempt(product_id, between)
                elif attempt is _unsafe:
                    between.wait()
        except BaseException as exc:  # reported to the caller below
            errors.append(exc)
            start.abort()
            between.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=racer, args=(slot,), name=f"race-lab-{slot}") for slot in range(sessions)]
    for thread in threads:
        thread.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass  # a racer failed to connect; its error is raised below
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if errors:
        raise errors[0]
    return sum(sold), seconds
