"""Django's PostgreSQL backend, with a connection pool that tells a burst from an outage.

psycopg_pool's `getconn` waits at most one timeout for a free connection, and then fails
whether the database is down or merely busy. Under gevent workers a burst's requests
queue for the worker's few connections (sync workers' queued in the listen backlog
instead, unbounded), so one timeout would turn a burst into `503 unavailable` answers.
`PatientPool` waits in slices of DB_POOL_TIMEOUT_MS: while some of its connections are out
with other requests (the database answers, they are only busy) it keeps waiting, up to
DB_POOL_QUEUE_SECONDS; when none is and a connection attempt failed meanwhile (or none has
been lent for OUTAGE_SECONDS) it fails, so an outage is still a prompt 503 `unavailable`.
"""

import threading
import time

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool, PoolTimeout

OUTAGE_SECONDS = 3.0


class PatientPool(ConnectionPool):
    def __init__(self, *args, queue_seconds: float = 30.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.queue_seconds = queue_seconds
        self._lent = 0  # connections out with requests right now: the database is answering
        self._lent_lock = threading.Lock()

    def getconn(self, timeout: float | None = None):
        started = time.monotonic()
        failed_connects = self._stats[self._CONNECTIONS_ERRORS]
        while True:
            try:
                conn = super().getconn(timeout=timeout)
            except PoolTimeout:
                waited = time.monotonic() - started
                # Nothing lent and a connect failed meanwhile (or nothing lent for OUTAGE_SECONDS):
                # the database is away. A worker starved of CPU in a burst also misses a slice
                # with nothing lent for a moment, so that alone is not an outage.
                outage = self._lent == 0 and (self._stats[self._CONNECTIONS_ERRORS] > failed_connects
                                              or waited >= OUTAGE_SECONDS)
                if outage or waited >= self.queue_seconds:
                    raise
                continue
            with self._lent_lock:
                self._lent += 1
            return conn

    def putconn(self, conn) -> None:
        with self._lent_lock:
            self._lent -= 1
        super().putconn(conn)


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        """Django's own pool property (5.2), building a PatientPool."""
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not pool_options:
            return None
        if self.alias not in self._connection_pools:
            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
            pool_options = {} if pool_options is True else pool_options
            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True  # Django sets it properly later on
            pool = PatientPool(
                kwargs=connect_kwargs,
                open=False,
                configure=self._configure_connection,
                check=ConnectionPool.check_connection if self.settings_dict["CONN_HEALTH_CHECKS"] else None,
                **pool_options,
            )
            self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]
