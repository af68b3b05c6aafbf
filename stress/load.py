"""An asyncio HTTP load engine that can hold thousands of requests in flight from one process.

`run_load` drives any request (a purchase, a stock read) either as a burst of a fixed
number of requests or as a sustained stream for a duration, at a bounded concurrency,
and tallies answers by status and error code with each request's latency. Each of the
`concurrency` clients holds one keep-alive connection (stress.http1, opened again when
the server closes it) and sends its requests on it one after the other.
"""

from __future__ import annotations

import asyncio
import json
import math
import resource
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from stress.http1 import Answer, ClientConnection, ProtocolError

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
TRANSPORT_ERROR = 0  # "status" of a request that got no HTTP answer at all

# One request: given its sequence number, the request's bytes (stress.http1.prepare).
Send = Callable[[int], bytes]


class NotLoopback(ValueError):
    pass


@dataclass(frozen=True)
class Target:
    host: str  # what to connect to
    port: int
    host_header: str  # what the requests' Host header says ("[::1]:8000" for IPv6)


def loopback_target(url: str) -> Target:
    """Where a loopback base URL's requests go, and the Host they name."""
    parts = urlsplit(loopback_base_url(url))
    return Target(host=parts.hostname, port=parts.port or 80, host_header=parts.netloc.rpartition("@")[2])


def loopback_base_url(url: str) -> str:
    """The URL without a trailing slash, if it points at this machine; load is never aimed elsewhere."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
        raise NotLoopback(f"{url!r} is not an http URL on 127.0.0.1, localhost or [::1]; "
                          "this tool only loads this machine, over plain HTTP.")
    return url.rstrip("/")


@dataclass
class Tally:
    answers: Counter = field(default_factory=Counter)  # (status, code) -> count
    latencies: list[float] = field(default_factory=list)  # seconds, one per answered request
    started: float = 0.0
    finished: float = 0.0
    in_flight: int = 0

    @property
    def done(self) -> int:
        return sum(self.answers.values())

    @property
    def wall(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    def count(self, *, status: int | None = None, at_least: int | None = None) -> int:
        return sum(n for (st, _), n in self.answers.items()
                   if (status is None or st == status) and (at_least is None or st >= at_least))

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the latencies, in seconds (0 when nothing answered)."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
        return ordered[rank - 1]

    def summary(self) -> dict:
        wall = self.wall
        return {
            "requests": self.done,
            "wall_s": round(wall, 4),
            "per_s": round(self.done / wall, 1) if wall else 0.0,
            "latency_ms": {f"p{p}": round(self.percentile(p) * 1000, 2) for p in (50, 95, 99)},
            "answers": {f"{status} {code}": n for (status, code), n in sorted(self.answers.items())},
        }


def raise_open_files_limit(wanted: int) -> None:
    """Each request in flight holds a socket; lift the soft limit toward the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def error_code(status: int, body: bytes) -> str:
    """The contract's error code of an answer, or 'ok' below 400."""
    if status < 400:
        return "ok"
    try:
        return str(json.loads(body).get("code", "?"))
    except (ValueError, AttributeError):
        return "non_json"


def answer_code(answer: Answer) -> tuple[int, str]:
    return answer.status, error_code(answer.status, answer.body)


async def run_load(send: Send, *, base_url: str, concurrency: int, total: int | None = None,
                   duration: float | None = None, on_progress: Callable[[Tally], None] | None = None,
                   timeout: float = 60.0) -> Tally:
    """Run `total` requests (burst) or keep them coming for `duration` seconds (sustained)."""
    if (total is None) == (duration is None):
        raise ValueError("give exactly one of total (burst) or duration (sustained)")
    target = loopback_target(base_url)
    raise_open_files_limit(concurrency + 512)
    tally = Tally()
    next_index = 0
    clock = time.perf_counter

    async def one(connection: ClientConnection | None, index: int) -> ClientConnection | None:
        tally.in_flight += 1
        began = clock()
        try:
            if connection is None or not connection.usable:
                connection = await asyncio.wait_for(ClientConnection.open(target.host, target.port), timeout)
            status, code = answer_code(await connection.exchange(send(index), timeout=timeout))
        except (TimeoutError, ProtocolError, OSError) as exc:
            status, code = TRANSPORT_ERROR, type(exc).__name__
            if connection is not None:
                connection.close()
            connection = None
        else:
            tally.latencies.append(clock() - began)
        tally.in_flight -= 1
        tally.answers[(status, code)] += 1
        return connection

    async def worker(deadline: float | None) -> None:
        nonlocal next_index
        connection = None
        try:
            while True:
                if deadline is not None and clock() >= deadline:
                    return
                if total is not None and next_index >= total:
                    return
                index, next_index = next_index, next_index + 1
                connection = await one(connection, index)
        finally:
            if connection is not None:
                connection.close()

    async def report() -> None:
        while True:
            await asyncio.sleep(0.2)
            on_progress(tally)

    reporter = asyncio.create_task(report()) if on_progress else None
    tally.started = clock()
    deadline = tally.started + duration if duration is not None else None
    workers = concurrency if total is None else min(concurrency, total)
    await asyncio.gather(*(worker(deadline) for _ in range(workers)))
    tally.finished = clock()
    if reporter:
        reporter.cancel()
        on_progress(tally)
    await asyncio.sleep(0)  # let the closed transports finish closing inside this loop
    return tally
