"""Start gunicorn serving this checkout, wait until it answers, stop it: the one launcher.

`serving` starts the default stack (`flashsale.serve`: migrate, demo data, gunicorn) for a
load run, under `python -m flashsale.embedded hold --` so the embedded PostgreSQL and
Redis are up and named in the environment, exactly as `make run` has them. The tests'
`running_app` (tests/servers.py) starts bare gunicorn against the test database through
the same `launch`.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from flashsale.embedded import DATA_DIR
from flashsale.serve import gunicorn_argv

ROOT = Path(__file__).resolve().parent.parent

# Every rate limit the settings read, switched off: for load runs and test servers, which
# measure or exercise the sale rather than the abuse guard.
RATE_LIMITS_OFF = {
    "RATE_LIMIT_PURCHASE_USER": "off",
    "RATE_LIMIT_PURCHASE_IP": "off",
    "RATE_LIMIT_LOGIN_IP": "off",
    "RATE_LIMIT_LOGIN_USER": "off",
}
LOAD_ENV = {**RATE_LIMITS_OFF, "GUNICORN_LOG_LEVEL": "warning"}


@dataclass(frozen=True)
class Server:
    url: str  # http://127.0.0.1:PORT
    pid: int  # gunicorn's master process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(*, port: int | None = None, env: dict | None = None):
    """The stack on 127.0.0.1:port (a free one by default); yields a `Server`.

    The server's own output (startup banner, a log line per refused purchase) goes to
    .data/load-server.log rather than over the load tool's report.
    """
    port = port or free_port()
    log_path = DATA_DIR / "load-server.log"
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        process = launch(port=port, env={**os.environ, **LOAD_ENV, **(env or {})}, setup=True, output=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(base, process)
        yield Server(url=base, pid=process.pid)  # flashsale.serve execs gunicorn: same pid
    finally:
        stop_session(process)


def launch(*, port: int, env: dict, setup: bool, output=None) -> subprocess.Popen:
    """gunicorn on 127.0.0.1:port in its own session (so `stop_session` reaches its workers).

    `setup=True` goes through `flashsale.serve` (migrate and seed first, as `make run`);
    otherwise gunicorn starts at once against a database that is ready. `output` takes
    the server's stdout and stderr (inherited by default).
    """
    argv = [sys.executable, "-m", "flashsale.serve"] if setup else gunicorn_argv()
    return subprocess.Popen(argv, cwd=ROOT, env={**env, "PORT": str(port)}, start_new_session=True,
                            stdout=output, stderr=subprocess.STDOUT if output is not None else None)


def stop_session(process: subprocess.Popen, *, timeout: float = 30) -> None:
    """SIGTERM a server started with `start_new_session` (gunicorn and its workers); SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_until_answering(base: str, process: subprocess.Popen, timeout: float = 120, *,
                         probe: str = "/api/health/") -> None:
    """Until the server answers HTTP at all on `probe` (a degraded or failing dependency is the caller's test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before answering")
        try:
            httpx.get(f"{base}{probe}", timeout=2)
            return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"no answer from {base} within {timeout:.0f}s")
