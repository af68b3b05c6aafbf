"""Group commit ("flat combining") of concurrent purchases of one product, per process.

On a flash sale every buyer wants the same row, so PostgreSQL serialises them on its
lock and each pays a whole transaction (lock, update, insert, commit) while the others
wait. Here the buyers of one product inside one worker process (threads under gthread,
greenlets under gevent) line up in memory instead: the first one becomes the *leader*
and applies, in one transaction under one row lock, its own purchase and those of every
buyer that queued meanwhile; each buyer is then handed exactly its own outcome.

- No one waits for a group to fill: a group is whatever is queued when the leader has
  got the row lock (so those who arrived while it waited for the lock are in, as far as
  the caller's `admit` lets them: see `Gathering.take`). A lone buyer leads a group of one
  at the cost of a mutex and a dict lookup, so under sync workers nothing changes.
- When a leader is done it hands the lead to the longest-waiting buyer, whose group is
  everything queued by then; buyers keep their arrival order.
- The leader runs the transaction on its own database connection; a follower gives its
  pooled connection back while it waits (`_give_back_connection`), so a worker's few pooled
  connections serve the pre-checks of many buyers and do not cap a group's size.
- What a group does with its buyers is the caller's `apply` (see `orders.services`),
  handed a `Gathering`: it may look at who is lined up before it locks anything
  (`lined_up`), then forms the group (`take`), admitting late arrivals only once they
  are prepared (`buy_in_group`'s `prepare`: the buyers' rate limits counted, which must
  never happen under the row lock). It must give every buyer of the group an
  outcome, or raise, in which case every buyer of the group (everyone lined up, if the
  group was not formed yet) and not yet answered gets that same failure (a lock timeout or
  a database error answers the whole group, and nothing of it was committed).
- A caller already inside a transaction is never grouped: its purchase must commit or
  roll back with that outer transaction, not with someone else's.

Only `threading` primitives, which gevent's monkey-patching turns into greenlet ones.
"""

import copy
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Buyer:
    """One purchase waiting in a product's line, and then its outcome."""

    user_id: int
    quantity: int
    key: str | None = None
    request_hash: str = ""
    # Set when the pre-check went by an on-sale note (products.sold_out) saying "no waiting
    # room", which may be up to the note's life old: the group re-checks admission on the locked row.
    admission_pass: str | None = None
    recheck_admission: bool = False
    # The purchase's rate limits, not yet counted (flashsale.ratelimits.PendingLimits): the
    # leader and the queued buyers count them many at a time, before the row lock.
    limits: object = None
    result: object = None
    error: BaseException | None = None
    answered: bool = False
    leads: bool = False
    # Looked up per buyer, not bound at import: with gunicorn's preload_app this module is
    # imported before gevent patches `threading`, and an unpatched Event would block the
    # whole worker instead of one greenlet.
    _woken: threading.Event = field(default_factory=lambda: threading.Event(), repr=False)  # noqa: PLW0108 (see above)

    def answer(self, result) -> None:
        self.result, self.answered = result, True

    def refuse(self, error: BaseException) -> None:
        self.error, self.answered = error, True

    def outcome(self):
        if self.error is not None:
            raise self.error
        return self.result


class _Line:
    __slots__ = ("waiting", "leader_busy", "awaiting_lock", "preparing", "arrivals")

    def __init__(self):
        self.waiting: deque[Buyer] = deque()
        self.leader_busy = False
        # From the leader's look at the line (`Gathering.lined_up`) until it takes its group:
        # who queues then may still join the group, once prepared (see buy_in_group).
        self.awaiting_lock = False
        self.preparing = False  # a queued buyer is running `prepare` for the line
        self.arrivals = 0


_lines: dict[int, _Line] = {}
# Held only for a few dict and deque operations, never across I/O, so it is safe even if
# it was made before gevent patched `threading`.
_guard = threading.Lock()
_group_sizes: Counter = Counter()


def group_sizes() -> Counter:
    """How many groups of each size this process has applied (a copy; for tests and tuning)."""
    with _guard:
        return Counter(_group_sizes)


def queued_buyers(product_id: int) -> int:
    """Buyers of the product waiting for a leader in this process (for tests and tuning)."""
    with _guard:
        line = _lines.get(product_id)
        return len(line.waiting) if line is not None else 0


def preparing(product_id: int) -> bool:
    """Whether a queued buyer of the product is running `prepare` in this process (for tests)."""
    with _guard:
        line = _lines.get(product_id)
        return line is not None and line.preparing


def reset_group_sizes() -> None:
    with _guard:
        _group_sizes.clear()


class Gathering:
    """What a leader's `apply` is handed: the buyers lined up behind it, and its group once formed."""

    __slots__ = ("leader", "_line", "_group")

    def __init__(self, leader: Buyer, line: "_Line | None" = None):
        self.leader, self._line = leader, line
        self._group: list[Buyer] = []

    @classmethod
    def of(cls, buyers: list[Buyer]) -> "Gathering":
        """A group fixed in advance (a retry of one buyer alone, a test): no line behind it."""
        gathering = cls(buyers[0])
        gathering._group = list(buyers)
        return gathering

    def lined_up(self) -> list[Buyer]:
        """The leader and everyone queued now, in arrival order, without taking them: for the
        work a group's buyers need done before the row lock is taken. Nobody but this leader
        takes from the line, so all of them will be offered to its `take`. Who queues from
        now until `take` prepares itself (see `buy_in_group`)."""
        if self._group:
            return list(self._group)
        with _guard:
            if self._line is None:
                return [self.leader]
            self._line.awaiting_lock = True
            return [self.leader, *self._line.waiting]

    def take(self, admit: Callable[[Buyer], bool] | None = None) -> list[Buyer]:
        """The group: formed at the first call from the leader and the buyers queued now, in
        arrival order, as far as `admit` lets them (the first it refuses, and everyone behind
        it, stay in line for the next leader, so arrival order is kept); later calls return it.
        """
        with _guard:
            if not self._group:
                if self._line is not None:
                    self._line.awaiting_lock = False
                self._group.append(self.leader)
                waiting = self._line.waiting if self._line is not None else deque()
                while waiting and (admit is None or admit(waiting[0])):
                    self._group.append(waiting.popleft())
                _group_sizes[len(self._group)] += 1
        return self._group


def buy_in_group(product_id: int, buyer: Buyer, apply: Callable[[int, Gathering], None],
                 prepare: Callable[[list[Buyer]], bool] | None = None):
    """Queue `buyer` for `product_id`; return its result or raise its refusal.

    `apply(product_id, gathering)` runs in the leader: it calls `gathering.take()` once it
    holds the product's row lock, so buyers who arrive while the leader waits for the lock
    still join its group, and gets the group (the leader first, then arrival order).

    `prepare(queued)`, if given, is work queued buyers need done before a group may take
    them (their rate limits counted, in orders.services). The leader does it for everyone
    lined up when it looks at the line; those who queue after that, while it waits for the
    row lock, do it for each other, outside any lock: one of them at a time runs it over
    everyone queued, again while more arrive, until the leader takes its group (who queues
    after that is prepared by the next leader, all at once). It returns False when none of
    them needed anything.
    """
    if connection.in_atomic_block:
        _apply_group(product_id, Gathering(buyer), apply)
        return buyer.outcome()
    prepares = False
    with _guard:
        line = _lines.get(product_id)
        if line is None:
            line = _lines[product_id] = _Line()
        if line.leader_busy:
            line.waiting.append(buyer)
            line.arrivals += 1
            prepares = prepare is not None and line.awaiting_lock and not line.preparing
            if prepares:
                line.preparing = True
        else:
            line.leader_busy = buyer.leads = True
    if not buyer.leads:
        _give_back_connection()
        if prepares:
            _prepare_queued(line, prepare, buyer)
        buyer._woken.wait()
        if not buyer.leads:  # woken with its answer, not to lead
            return buyer.outcome()
    _lead(product_id, line, buyer, apply)
    return buyer.outcome()


def _prepare_queued(line: _Line, prepare: Callable[[list[Buyer]], bool], preparer: Buyer) -> None:
    """Run `prepare` over the line's queued buyers until the leader has taken its group, or a
    pass finds nothing to do and nobody has queued since (so no arrival is left unprepared
    by a preparer that is leaving), or the preparer itself is answered or handed the lead
    (its own answer, or the line, must not wait on passes for later groups)."""
    try:
        while not preparer._woken.is_set():
            # Let the requests already running in this process queue first (a gevent yield,
            # no wait): one pass then counts them together. Measured at 64 clients: 0.45 -> 0.09
            # Redis calls per purchase.
            time.sleep(0)
            with _guard:
                queued, seen = list(line.waiting), line.arrivals
                if not line.awaiting_lock:
                    line.preparing = False
                    return
            if prepare(queued):
                continue
            with _guard:
                if line.arrivals == seen:
                    line.preparing = False
                    return
        with _guard:
            line.preparing = False
    except BaseException as failure:
        with _guard:
            line.preparing = False
        if not isinstance(failure, Exception):
            raise
        # The preparer is queued and will be answered by a group: it must not leave with an
        # error. Unprepared buyers are still prepared by the leader that takes them.
        logger.exception("preparing queued buyers failed")


def _give_back_connection() -> None:
    """A queued buyer needs no database connection: the leader applies its purchase.

    Under a pool (gevent workers: a few connections per worker, `DB_POOL_MAX_SIZE`) the
    buyer's connection goes back to the pool while it waits, so the next buyers' pre-checks
    can run and the group is not capped at the pool's size. Should it be handed the lead,
    Django borrows a connection again for its transaction. Without a pool nothing is done:
    closing would cost a reconnect.
    """
    if connection.settings_dict.get("OPTIONS", {}).get("pool") and connection.connection is not None:
        connection.close()


def _lead(product_id: int, line: _Line, leader: Buyer, apply) -> None:
    gathering = Gathering(leader, line)  # its group is woken here even if apply raises
    try:
        _apply_group(product_id, gathering, apply)
    finally:
        group = gathering.take()  # formed by now (_apply_group takes it on every way out)
        with _guard:
            successor = line.waiting.popleft() if line.waiting else None
            if successor is None:
                line.leader_busy = False
                del _lines[product_id]  # a later buyer starts a fresh line
            else:
                successor.leads = True
        for follower in group[1:]:
            follower._woken.set()
        if successor is not None:
            successor._woken.set()


def _apply_group(product_id: int, gathering: Gathering, apply) -> None:
    try:
        apply(product_id, gathering)
    except BaseException as failure:
        # Failed before or after forming the group (a lock timeout ends the wait that the
        # queued buyers shared): everyone in it gets the same answer, nothing committed.
        for buyer in gathering.take():
            if not buyer.answered:
                buyer.refuse(failure if buyer is gathering.leader else _copy_for(failure))
        if not isinstance(failure, Exception):
            raise  # GreenletExit, KeyboardInterrupt: the leader's own, after answering the rest
    unanswered = [buyer for buyer in gathering.take() if not buyer.answered]
    if unanswered:
        problem = RuntimeError("a purchase group left a buyer without an outcome")
        for buyer in unanswered:
            buyer.refuse(problem)


def _copy_for(failure: BaseException) -> BaseException:
    """The leader's failure for a follower: its own object, so threads never share a traceback.

    A failure that stops only the leader's own thread (GreenletExit, KeyboardInterrupt)
    becomes an error in the followers instead of stopping theirs.
    """
    if not isinstance(failure, Exception):
        return RuntimeError(f"the purchase group's leader was stopped ({type(failure).__name__})")
    try:
        twin = copy.copy(failure)
    except Exception:
        return failure
    twin.__cause__, twin.__context__, twin.__traceback__ = failure.__cause__, failure.__context__, None
    return twin
