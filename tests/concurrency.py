"""Run many real threads at once, each with its own database connection; hold locks elsewhere."""

import contextlib
import threading
from collections.abc import Callable, Iterable

import psycopg
from django.db import connection, transaction

# The CI PostgreSQL allows 100 connections; keep concurrent sessions well under that.
MAX_SESSIONS = 40


def run_at_once(func: Callable, calls: Iterable[tuple], *, max_sessions: int = MAX_SESSIONS) -> list:
    """Start one thread per call, release them together, return each call's result or exception."""
    return start_at_once(func, calls, max_sessions=max_sessions)()


def start_at_once(func: Callable, calls: Iterable[tuple], *, max_sessions: int = MAX_SESSIONS) -> Callable[[], list]:
    """`run_at_once` without waiting: returns a function that joins the threads and gives the results."""
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

    def join() -> list:
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
        return results

    return join


@contextlib.contextmanager
def other_session():
    """A plain psycopg session of its own (not Django's), rolled back at the end."""
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}) as other:
        yield other
        other.rollback()


class HeldRowLock:
    def __init__(self, release: threading.Event, holder: threading.Thread):
        self._release, self._holder = release, holder

    def release(self) -> None:
        """End the holding transaction now (it would end with the `with` block anyway)."""
        self._release.set()
        self._holder.join()


@contextlib.contextmanager
def row_locked_elsewhere(product_id: int):
    """Another session holding the product's row lock, like a stuck admin transaction.

    Taken the shop's way (`products.lock_objects`), in a thread with its own connection,
    so the test needs `django_db(transaction=True)`.
    """
    from products.lock_objects import product_for_update

    locked, release, failures = threading.Event(), threading.Event(), []

    def hold() -> None:
        try:
            with transaction.atomic():
                product_for_update(product_id)
                locked.set()
                release.wait(120)
        except BaseException as exc:  # handed to the test below
            failures.append(exc)
            locked.set()
        finally:
            connection.close()

    holder = threading.Thread(target=hold, name="row-lock-holder")
    holder.start()
    try:
        locked.wait(30)
        if failures:
            raise failures[0]
        yield HeldRowLock(release, holder)
    finally:
        release.set()
        holder.join()
