"""Keep-alive connections spread evenly over the gevent workers.

All workers accept from the one listening socket gunicorn's master opened, and the kernel
hands each new connection to whichever worker calls accept() first. A worker that is
already awake (answering) wins almost every time, so a crowd that connects at once can
land on one worker: `make bench` saw all 64 keep-alive clients in one of two workers
while the other sat idle (6,800 sold-out answers/s against 9,650 when they were split,
and the run-to-run spread of every keep-alive figure came mostly from this). Behind a
proxy that keeps a few upstream connections alive the same luck decides for hours.

So each worker publishes how many connections it holds in a small table shared by the
workers (anonymous shared memory made by the master before it forks them), and before an
accept a worker that holds more than `SLACK` connections over the least-loaded live
worker steps back for `PAUSE_SECONDS`, leaving the connection to the others, who were
woken by the same readiness. It never steps back more than `MAX_PAUSES` times in a row,
so a connection waits at most ~20 ms even when the others cannot take it (less when a
connection of its own closes meanwhile: gevent then starts accepting again). Only workers
that are accepting are counted: a slot is claimed when the worker's server starts and
given up when it closes (a draining worker), and one whose heartbeat is older than
`STALE_SECONDS` (stuck) is skipped, as is a full one (it does not accept). Off with
ACCEPT_BALANCE=0, with one worker, with `reuse_port` (each worker then has its own
queue), or when gunicorn.conf.py's hooks did not make the table (a worker then accepts as
gunicorn's does).
"""

from __future__ import annotations

import mmap
import os
import time

from gevent.server import StreamServer

SLACK = 1  # connections a worker may hold over the least-loaded one before it steps back
PAUSE_SECONDS = 0.002
MAX_PAUSES = 10
STALE_SECONDS = 3.0
SLOTS = 256
_FIELDS = 3  # per slot: pid, connections held, heartbeat (ms of the system-wide monotonic clock)
PID, HELD, HEARTBEAT = range(_FIELDS)


def enabled() -> bool:
    return os.environ.get("ACCEPT_BALANCE", "1") != "0"


class Table:
    """The workers' shared counts: a row per worker slot, written only by its worker (and by
    the master when it hands the slot out or takes it back); cell 0 holds how many rows have
    ever been handed out, so a lookup reads only those."""

    def __init__(self, slots: int = SLOTS):
        self.slots = slots
        self._memory = mmap.mmap(-1, (1 + slots * _FIELDS) * 8)  # MAP_SHARED: children see each other's writes
        self._cells = memoryview(self._memory).cast("q")

    # the master's side

    def assign(self, live_slots: set[int]) -> int | None:
        """A free slot for the worker about to be forked (none of `live_slots`), cleared; None
        when every slot is taken (that worker then accepts as gunicorn's do)."""
        for slot in range(self.slots):
            if slot not in live_slots:
                self.release(slot)
                self._cells[0] = max(self._cells[0], slot + 1)
                return slot
        return None

    def release(self, slot: int) -> None:
        """Not counted by the others: a slot handed out but not yet accepting, or given up."""
        self._write(slot, pid=0, held=0, heartbeat=0)

    # a worker's side

    def claim(self, slot: int, pid: int) -> None:
        self._write(slot, pid=pid, held=0, heartbeat=_now_ms())

    def set_held(self, slot: int, held: int) -> None:
        self._cells[1 + slot * _FIELDS + HELD] = held

    def beat(self, slot: int) -> None:
        self._cells[1 + slot * _FIELDS + HEARTBEAT] = _now_ms()

    def held(self, slot: int) -> int:
        return self._cells[1 + slot * _FIELDS + HELD]

    def least_held_elsewhere(self, slot: int, *, full_at: int) -> int | None:
        """The fewest connections a live, not full, other worker holds; None if there is none."""
        cells, fresh_after = self._cells, _now_ms() - int(STALE_SECONDS * 1000)
        least = None
        for other in range(cells[0]):
            base = 1 + other * _FIELDS
            if other == slot or cells[base + PID] == 0 or cells[base + HEARTBEAT] < fresh_after:
                continue
            held = cells[base + HELD]
            if held < full_at and (least is None or held < least):
                least = held
        return least

    def _write(self, slot: int, *, pid: int, held: int, heartbeat: int) -> None:
        base = 1 + slot * _FIELDS
        self._cells[base + PID] = 0  # never a live pid beside another worker's numbers
        self._cells[base + HELD], self._cells[base + HEARTBEAT] = held, heartbeat
        self._cells[base + PID] = pid


def _now_ms() -> int:
    return int(time.monotonic() * 1000)  # CLOCK_MONOTONIC: one clock for every process


class Balance:
    """One worker's view: the connections it holds, and whether to step back from an accept.
    Counted by the others only between `start` (its server accepts) and `stop`."""

    def __init__(self, table: Table, slot: int, *, full_at: int):
        self.table, self.slot, self.full_at = table, slot, full_at
        self.held = 0
        self.pauses = 0
        self.stepped_back = 0  # in all, for tests and tuning
        self.accepting = False

    def start(self) -> None:
        self.accepting = True
        self.table.claim(self.slot, os.getpid())
        self.table.set_held(self.slot, self.held)

    def stop(self) -> None:
        """No longer accepting (closing, draining): its low count must not hold the others back."""
        self.accepting = False
        self.table.release(self.slot)

    def should_step_back(self) -> bool:
        if self.pauses < MAX_PAUSES:
            least = self.table.least_held_elsewhere(self.slot, full_at=self.full_at)
            if least is not None and self.held > least + SLACK:
                return True
        self.pauses = 0  # this accept goes ahead: the next crowding starts a new streak
        return False

    def paused(self) -> None:
        self.pauses += 1
        self.stepped_back += 1

    def opened(self) -> None:
        self.pauses = 0
        self.held += 1
        if self.accepting:
            self.table.set_held(self.slot, self.held)

    def closed(self) -> None:
        self.held -= 1
        if self.accepting:
            self.table.set_held(self.slot, self.held)

    def beat(self) -> None:
        if self.accepting:
            self.table.beat(self.slot)


class BalancedStreamServer(StreamServer):
    """gevent's StreamServer that steps back from an accept while its worker holds more
    connections than another (see the module docstring). `balance` is set by the worker.

    A connection is counted when it is handed to its greenlet (`do_handle`) and uncounted in
    `do_close`, which gevent calls exactly once for each, whatever became of it (handled,
    failed, a TLS handshake that never finished, a spawn that failed)."""

    balance: Balance | None = None

    def start(self):
        super().start()
        if self.balance is not None:
            self.balance.start()

    def close(self):
        if self.balance is not None:
            self.balance.stop()
        super().close()

    def _do_read(self):
        balance = self.balance
        if balance is not None and balance.should_step_back():
            balance.paused()
            self.stop_accepting()  # the socket stays readable: without this the loop would spin
            self._timer = self.loop.timer(PAUSE_SECONDS)
            self._timer.start(self._start_accepting_if_started)
            return
        super()._do_read()

    def do_handle(self, *args):
        if self.balance is not None:
            self.balance.opened()
        super().do_handle(*args)

    def do_close(self, *args):
        try:
            super().do_close(*args)
        finally:
            if self.balance is not None:
                self.balance.closed()
