"""A per-process "this product is sold out" mark, so a loser costs no database round trip.

When a flash sale sells out, thousands of buyers keep arriving; each would pay the
unlocked pre-check (one statement) only to hear `sold_out`. The mark remembers, for a
short while, the facts that pre-check would have read (stock 0, the sale window, the
limit), so the purchase can run the contract's checks in their order without asking the
database. Rules it keeps:

- It only ever says "sold out": the absence of a mark means "ask the database", and the
  row lock still decides every sale. A stale mark can only refuse, never oversell.
- Only products without `max_per_user` are marked: with a limit, `purchase_limit_reached`
  comes before `sold_out` and depends on what this shopper holds, which needs a read.
- The window is re-checked against the clock, so `sale_ended` / `sale_not_started` fall
  where a one-by-one run would put them.
- Set on commit by the transaction that sold the last unit, and by a pre-check whose
  committed read saw stock 0 (so every worker learns it, not only the one that sold out).
- Cleared on commit by restock, cancel and a product edit in this process. Other
  processes learn of those within MARK_SECONDS (the mark's whole life), so a restock or a
  cancel is purchasable everywhere at most MARK_SECONDS after it committed.
- A clear wins over a mark whose facts were read before it: each clear bumps one
  process-wide generation, and a mark whose facts were read under an older one is
  dropped (any product's clear drops it: rare, and it only costs one more read).

The same dict keeps, under the same rules of life and clearing, the facts of a product a
pre-check recently read *on sale* (stock left, no limit): its **on-sale note**. The note lets
the next buyers skip the unlocked read too, but it never answers anything about stock: a
buyer it lets through goes to the row lock, where the group's checks (window, limit, stock,
and the waiting room again if it was switched on meanwhile) decide from the locked row. It
only carries what the pre-check must ask before the lock (is there a waiting room?) and the
window, checked against the clock as the mark's is. A note never replaces a fresh mark.

An entry about to end (its last REFRESH_AHEAD_SECONDS) is renewed by **one** caller, who
reads the database as if the entry were gone (`claim_refresh`), while the others go on
using the entry, which is still within its life. Without that, every buyer in flight at
the moment an entry ended read the row at once: a crowd of losers paid one read each
twice a second per worker instead of one read between them. No answer ever uses facts
older than MARK_SECONDS.

When there is no entry, the first buyer of a crowd reads and the others arriving during
that read wait for it (at most READ_WAIT_SECONDS) and use what it left: a sale's opening
second, or the moment an entry ended without a renewal, costs one read per process, not
one per buyer in flight. Products known to have a per-shopper limit are never waited for:
each of their buyers needs a read of its own (what that shopper holds).

Redis is not used: a per-process dict is a memory read, and Redis down cannot change
any answer here.
"""

import contextlib
import threading
import time

from django.db import transaction

MARK_SECONDS = 0.5
REFRESH_AHEAD_SECONDS = 0.1
READ_WAIT_SECONDS = 1.0  # then the waiter reads for itself
_MAX_MARKS = 10_000  # products; random ids cannot grow it without bound

_marks: dict[int, tuple[float, dict]] = {}
_generation = 0
_refreshing: set[int] = set()  # products whose entry one caller is renewing
_reads_in_flight: dict[int, threading.Event] = {}  # product -> set when its first read is done
_limited_until: dict[int, float] = {}  # products read with a per-shopper limit: never waited for
_guard = threading.Lock()


def generation() -> int:
    """Read before the facts a later `mark_sold_out` will carry."""
    return _generation


def mark_sold_out(product_id: int, facts: dict, *, seen_generation: int) -> None:
    """Remember `facts` (a purchase snapshot with stock 0) unless a clear came in between."""
    if facts["stock"] <= 0:
        remember(product_id, facts, seen_generation=seen_generation)


def remember(product_id: int, facts: dict, *, seen_generation: int) -> None:
    """What a pre-check read: a mark if the stock was 0, else an on-sale note (unlimited products only)."""
    now = time.monotonic()
    if facts["max_per_user"] is not None:
        if len(_limited_until) >= _MAX_MARKS:
            _limited_until.clear()
        _limited_until[product_id] = now + MARK_SECONDS
        return
    with _guard:
        if _generation != seen_generation:
            return
        if facts["stock"] > 0:
            known = _marks.get(product_id)
            if known is not None and known[1]["stock"] <= 0 and now < known[0]:
                return  # the commit that sold the last unit marked it since this was read
        if len(_marks) >= _MAX_MARKS:
            _marks.clear()
        _marks[product_id] = (now + MARK_SECONDS, facts)


def mark_sold_out_on_commit(product_id: int, facts: dict) -> None:
    """From inside the transaction that sold the last unit: mark once it has committed."""
    seen = generation()
    transaction.on_commit(lambda: mark_sold_out(product_id, facts, seen_generation=seen))


def sold_out_facts(product_id: int) -> dict | None:
    """The remembered pre-check facts of a sold-out product, or None (ask the database)."""
    facts = _fresh(product_id)
    return facts if facts is not None and facts["stock"] <= 0 else None


def settled_sold_out_facts(product_id: int) -> dict | None:
    """`sold_out_facts` for a caller that never renews (flashsale.early_refusals): None also
    while the entry is due for renewal and no one is renewing it, so that the next caller
    of the usual way claims the renewal and reads (a restock made in another process is
    then seen as soon as it would have been without the early answers)."""
    found = _marks.get(product_id)
    if found is not None and product_id not in _refreshing and _due_for_renewal(found):
        return None
    return sold_out_facts(product_id)


def _due_for_renewal(found: tuple[float, dict]) -> bool:
    """Whether an entry (until, facts) is in its last REFRESH_AHEAD_SECONDS."""
    return time.monotonic() >= found[0] - REFRESH_AHEAD_SECONDS


def on_sale_facts(product_id: int) -> dict | None:
    """The on-sale note: facts of a product read with stock left, or None. Never proof of stock."""
    facts = _fresh(product_id)
    return facts if facts is not None and facts["stock"] > 0 else None


def _fresh(product_id: int) -> dict | None:
    found = _marks.get(product_id)
    if found is None:
        return None
    if time.monotonic() >= found[0]:
        _marks.pop(product_id, None)
        return None
    return found[1]


def claim_refresh(product_id: int) -> bool:
    """True for the one caller who should renew an entry about to end (it then reads the
    database as if there were no entry, and must call `release_refresh` afterwards)."""
    found = _marks.get(product_id)
    if found is None or product_id in _refreshing or not _due_for_renewal(found):
        return False
    with _guard:
        if product_id in _refreshing:
            return False
        _refreshing.add(product_id)
    return True


def release_refresh(product_id: int) -> None:
    _refreshing.discard(product_id)


def await_read_in_flight(product_id: int) -> bool | None:
    """If another caller in this process is reading this product's facts, wait for it to
    finish (then look for the entry it left): True when it finished, False when the wait
    ran out; None (at once) when there was nothing to wait for."""
    event = _reads_in_flight.get(product_id)
    if event is None or _limited_until.get(product_id, 0.0) > time.monotonic():
        return None
    return event.wait(READ_WAIT_SECONDS)


@contextlib.contextmanager
def reading(product_id: int):
    """Around a read of the product's facts: callers of `await_read_in_flight` wait for it."""
    event = threading.Event()
    mine = _reads_in_flight.setdefault(product_id, event) is event
    try:
        yield
    finally:
        if mine:
            del _reads_in_flight[product_id]
            event.set()


def clear_sold_out(product_id: int) -> None:
    global _generation  # noqa: PLW0603 (one process-wide counter, always changed under _guard)
    with _guard:
        _generation += 1
        _marks.pop(product_id, None)


def clear_sold_out_on_commit(product_id: int) -> None:
    """From a transaction that put units back (restock, cancel) or changed the sale's facts."""
    transaction.on_commit(lambda: clear_sold_out(product_id))
