"""The race lab: one stock race run three ways, to show why the shop locks the row.

Each run puts its units on a scratch `LabShelf` (the lab's own table: the shop never
sees it) and lets `buyers` real threads, each on its own database connection, try to take one
unit. At most SESSIONS threads run at once (the CI PostgreSQL allows 100 connections).

- `unsafe`: read the stock, decrement in Python, write the number back. Every thread of
  a round reads before any writes (a barrier), so the lost updates show every time.
  This strategy exists only here and only ever touches the lab's table.
- `locked`: the shop's way, `SELECT ... FOR NO KEY UPDATE` then an `F()` decrement.
- `conditional`: one `UPDATE ... SET stock = stock - 1 WHERE stock >= 1`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import asdict, dataclass

from django.db import connection, transaction
from django.db.models import F

from dashboard import lock_objects
from dashboard.models import LabShelf

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
        """Units sold beyond the stock there was: the same figure as `manage.py stress`'s."""
        return max(0, self.sold - self.stock)

    @property
    def lost_updates(self) -> int:
        """Sales the shelf never noticed: sold, yet still counted as on the shelf."""
        return max(0, self.sold - (self.stock - self.final_stock))

    @property
    def per_second(self) -> float:
        return self.buyers / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "oversold": self.oversold, "lost_updates": self.lost_updates,
                "per_second": round(self.per_second, 1)}


def _unsafe(shelf_id: int, between_read_and_write: threading.Barrier) -> bool:
    lab = LabShelf.objects.filter(pk=shelf_id)
    seen = lab.values_list("stock", flat=True).get()
    between_read_and_write.wait()  # let every racer of this round read the same number first
    if seen < 1:
        return False
    lab.update(stock=seen - 1)  # read-then-write: the bug this lab exists to show
    return True


def _locked(shelf_id: int, _barrier) -> bool:
    with transaction.atomic():
        shelf = lock_objects.lab_shelf_for_update(shelf_id)
        if shelf.stock < 1:
            return False
        LabShelf.objects.filter(pk=shelf.pk).update(stock=F("stock") - 1)
        return True


def _conditional(shelf_id: int, _barrier) -> bool:
    return LabShelf.objects.filter(pk=shelf_id, stock__gte=1).update(stock=F("stock") - 1) == 1


_ATTEMPTS = {"unsafe": _unsafe, "locked": _locked, "conditional": _conditional}


def run_race(*, strategy: str, buyers: int, stock: int) -> RaceResult:
    """Race `buyers` threads for `stock` units of a fresh lab shelf with one strategy."""
    if strategy not in _ATTEMPTS:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    if not 1 <= buyers <= MAX_BUYERS or not 0 <= stock <= MAX_STOCK:
        raise ValueError(f"buyers must be 1..{MAX_BUYERS:,} and stock 0..{MAX_STOCK:,}")
    shelf = LabShelf.objects.create(strategy=strategy, stock=stock)
    try:
        sold, seconds = _race(_ATTEMPTS[strategy], shelf.pk, buyers)
        final_stock = LabShelf.objects.filter(pk=shelf.pk).values_list("stock", flat=True).get()
    finally:
        LabShelf.objects.filter(pk=shelf.pk).delete()  # scratch: nothing refers to it
    return RaceResult(strategy=strategy, buyers=buyers, stock=stock, sold=sold, final_stock=final_stock,
                      seconds=seconds)


def _race(attempt, shelf_id: int, buyers: int) -> tuple[int, float]:
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
                    sold[slot] += attempt(shelf_id, between)
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
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait()  # broken if a racer failed to connect; its error is raised below
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if errors:
        raise errors[0]
    return sum(sold), seconds
