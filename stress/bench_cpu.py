"""CPU metering for `make bench`: what the app, the database and the load generator spent.

Read from /proc, so it holds on a shared machine where wall-clock rates are noisy: CPU per
answer is the figure that says what each answer costs, whatever else the cores were doing.
"""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path

from flashsale import embedded

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SIDES = ("app", "database", "load_generator")


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU used so far by a process, its reaped children and its live children (one level:
    gunicorn's workers, PostgreSQL's backends)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid == root_pid:
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        elif ppid == root_pid:
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def _own_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # pgbench, once it has exited
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@contextlib.contextmanager
def cpu_meter(server_pid: int | None):
    """Yields a dict filled on exit with the CPU seconds each side spent meanwhile
    (no `app` side when no server is measured, as for pgbench)."""

    def sample():
        return {"app": tree_cpu_seconds(server_pid) if server_pid else None,
                "database": tree_cpu_seconds(embedded.postgres_pid() or -1),
                "load_generator": _own_seconds()}

    used: dict = {}
    before = sample()
    yield used
    after = sample()
    used.update({side: after[side] - before[side] for side in SIDES if before[side] is not None})


def per_answer_ms(cpu: dict, answers: int) -> dict:
    return {side: round(seconds * 1000 / max(answers, 1), 3) for side, seconds in cpu.items()}
