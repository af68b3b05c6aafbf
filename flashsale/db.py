"""Helpers for transactions that take row locks."""

import contextlib

from django.conf import settings
from django.db import OperationalError, connection

from flashsale.errors import Busy

LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE raised when lock_timeout expires


def set_lock_timeout(milliseconds: int | None = None) -> None:
    """Bound the wait for row locks in the current transaction (SET LOCAL ends with it)."""
    ms = settings.LOCK_TIMEOUT_MS if milliseconds is None else milliseconds
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{int(ms)}ms"])


def is_lock_timeout(exc: BaseException) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE


@contextlib.contextmanager
def lock_timeout_is_busy():
    """Wrap an atomic block: a lock wait past LOCK_TIMEOUT_MS becomes `Busy` (503, nothing changed)."""
    try:
        yield
    except OperationalError as exc:
        if is_lock_timeout(exc):
            raise Busy() from exc
        raise
