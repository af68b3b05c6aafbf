"""Run many real threads at once, each with its own database connection."""

import threading
from collections.abc import Callable, Iterable

from django.db import connection

# The CI PostgreSQL allows 100 connections; keep concurrent sessions well under that.
MAX_SESSIONS = 40


def run_at_once(func: Callable, calls: Iterable[tuple], *, max_sessions: int = MAX_SESSIONS) -> list:
    """Start one thread per call, release them together, return each call's result or exception."""
    calls = list(calls)
    results: list = [None] * len(calls)
    start = threading.Barrier(len(calls))
    sessions = threading.BoundedSemaphore(max_sessions)

    def worker(index: int, args: tuple) -> None:
        start.wait()
        with sessions:
            try:
                results[index] = func(*args)
            except Exception as exc:  # recorded and asserted on by the test
                results[index] = exc
            finally:
                connection.close()

    threads = [threading.Thread(target=worker, args=(i, args)) for i, args in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    return results
