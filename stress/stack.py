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

import httpx

# Load runs measure the sale, not the abuse guard: rate limits off, quiet logs.
LOAD_ENV = {
    "RATE_LIMIT_PURCHASE_USER": "off",
    "RATE_LIMIT_PURCHASE_IP": "off",
    "RATE_LIMIT_LOGIN_IP": "off",
    "GUNICORN_LOG_LEVEL": "warning",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(*, port: int | None = None, env: dict | None = None, quiet: bool = True):
    """The stack on 127.0.0.1:port (a free one by default); yields its base URL."""
    port = port or free_port()
    child_env = {**os.environ, **LOAD_ENV, "PORT": str(port), **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "flashsale.serve"], env=child_env, start_new_session=True,
        stdout=subprocess.DEVNULL if quiet else None,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base, process)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
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
