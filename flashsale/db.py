"""Helpers for transactions that take row locks: the one prologue every locking write uses."""

import contextlib
import re

from django.conf import settings
from django.db import OperationalError, connection, transaction

from flashsale.errors import Busy

LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE raised when lock_timeout expires
_STARTUP_LOCK_TIMEOUT = re.compile(r"-c\s*lock_timeout=(\d+)ms")


def startup_lock_timeout_ms() -> int | None:
    """The lock_timeout the connection was opened with (None: the server's default).

    `settings.database_from_url` puts LOCK_TIMEOUT_MS in the libpq `options` at connect
    time, so it costs no round trip per transaction (the old prologue's `set_config` was
    one of every purchase's statements).
    """
    found = _STARTUP_LOCK_TIMEOUT.search(connection.settings_dict.get("OPTIONS", {}).get("options", ""))
    return int(found.group(1)) if found else None


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


@contextlib.contextmanager
def locked_transaction():
    """`transaction.atomic()` whose row-lock waits end after LOCK_TIMEOUT_MS as `Busy`.

    The prologue of every write that locks a product row (purchase, cancel, restock, edit).
    The timeout normally rides on the connection (see `lock_timeout_option`), so this
    sends nothing; only when the setting differs from what the connection was opened
    with (a test's override, a URL that could not carry startup options) is it set for
    this transaction with SET LOCAL, one extra statement.
    """
    with lock_timeout_is_busy(), transaction.atomic():
        if startup_lock_timeout_ms() != settings.LOCK_TIMEOUT_MS:
            set_lock_timeout()
        yield
