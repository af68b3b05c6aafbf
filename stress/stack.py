"""Start the default stack (`flashsale.serve`: migrate, demo data, gunicorn) for a load run, then stop it.

Run under `python -m flashsale.embedded hold --` so the embedded PostgreSQL and Redis
are up and named in the environment, exactly as `make run` has them.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

from flashsale.embedded import DATA_DIR

# Load runs measure the sale, not the abuse guard: rate limits off, quiet logs.
LOAD_ENV = {
    "RATE_LIMIT_PURCHASE_USER": "off",
    "RATE_LIMIT_PURCHASE_IP": "off",
    "RATE_LIMIT_LOGIN_IP": "off",
    "RATE_LIMIT_LOGIN_USER": "off",
    "GUNICORN_LOG_LEVEL": "warning",
}


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
    child_env = {**os.environ, **LOAD_ENV, "PORT": str(port), **(env or {})}
    log_path = DATA_DIR / "load-server.log"
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "flashsale.serve"], env=child_env, start_new_session=True,
            stdout=log, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base, process)
        yield Server(url=base, pid=process.pid)  # flashsale.serve execs gunicorn: same pid
    finally:
        stop_session(process)


def stop_session(process: subprocess.Popen, *, timeout: float = 30) -> None:
    """SIGTERM a server started with `start_new_session` (gunicorn and its workers); SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _wait_for(base: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before answering")
        try:
            if httpx.get(f"{base}/api/health/", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"no answer from {base} within {timeout:.0f}s")
