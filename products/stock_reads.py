"""`GET /api/products/{id}/stock/` answered before Django when a recent answer is known.

The contract lets the stock endpoint's figure be up to 1 s old. A crowd polling one
product then needs one real read per tick, and every other poll can be the same answer
again: this WSGI wrapper keeps, per process, the last `200` Django gave for each stock
path and replays it (status, headers, body) with a fresh request id, skipping Django's
request object, middleware, URL resolver and DRF. That puts a known stock read at about
the cost of a bare WSGI answer, which is what `make bench` holds it against.

- On unless STOCK_READ_REPLAY=0 (or STOCK_READ_CACHE_MS=0).
- Fresh for STOCK_READ_CACHE_MS (<= 500 ms): replayed. Older: the next request refreshes
  it through Django (which reads the row itself, not the view's own per-process copy),
  while concurrent requests keep replaying the old copy until that refresh lands, never
  past 2 x STOCK_READ_CACHE_MS (<= 1 s).
- Only `200`s are kept, so an unknown product (`404 not_found`), a bad id, another
  method (`405`), a disallowed Host (`400`) or a database outage (`503`) are always
  Django's own fresh answer. Buyers never see this copy: a purchase locks the row.
"""

from __future__ import annotations

import re
import time

from django.conf import settings

from flashsale.hosts import allowed_host
from flashsale.request_id import HEADER, request_id_for

STOCK_PATH = re.compile(r"/api/products/[0-9]{1,19}/stock/")
# Tells the view that this read fills the replay, so it must read the row, not a copy.
FRESH_READ = "flashsale.fresh_stock_read"
_NOT_REPLAYED = {HEADER.lower(), "set-cookie", "date"}
_MAX_PATHS = 10_000  # a scan of random ids cannot grow it without bound


class StockReadReplay:
    """WSGI middleware around the Django application (see flashsale/wsgi.py)."""

    def __init__(self, application, *, clock=time.monotonic):
        self.application = application
        self.clock = clock
        self._answers: dict[str, tuple[float, str, list[tuple[str, str]], bytes]] = {}
        self._refreshing: set[str] = set()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        fresh_for = settings.STOCK_READ_CACHE_MS / 1000
        if (environ.get("REQUEST_METHOD") != "GET" or fresh_for <= 0 or not settings.STOCK_READ_REPLAY
                or not STOCK_PATH.fullmatch(path) or not allowed_host(environ)):
            return self.application(environ, start_response)
        now = self.clock()
        kept = self._answers.get(path)
        if kept is not None:
            age = now - kept[0]
            if age < fresh_for or (path in self._refreshing and age < 2 * fresh_for):
                return _replay(kept, environ, start_response)
        return self._refresh(path, now, environ, start_response)

    def _refresh(self, path: str, read_at: float, environ, start_response):
        self._refreshing.add(path)
        try:
            captured = []
            environ[FRESH_READ] = True
            result = self.application(environ, lambda status, headers, exc_info=None: captured.append((status, headers)))
            try:
                body = b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()  # Django's request_finished: the connection goes back to the pool
        finally:
            self._refreshing.discard(path)
        status, headers = captured[0]
        if status.startswith("200 ") and not any(name.lower() == "set-cookie" for name, _ in headers):
            if len(self._answers) >= _MAX_PATHS:
                self._answers.clear()
            self._answers[path] = (read_at, status, [(n, v) for n, v in headers if n.lower() not in _NOT_REPLAYED], body)
        start_response(status, headers)
        return [body]


def _replay(kept, environ, start_response):
    _read_at, status, headers, body = kept
    start_response(status, [*headers, (HEADER, request_id_for(environ.get("HTTP_X_REQUEST_ID", "")))])
    return [body]
