"""gunicorn settings for `make run`, the benchmarks and the container.

Workers default to WEB_CONCURRENCY (else 2 x cores + 1). See docs/benchmarks.md for the
measurements behind the worker class and counts.
"""

import multiprocessing
import os

bind = os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
backlog = 4096  # a flash sale opens with thousands of connections at once
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None  # off by default: it costs throughput
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
proc_name = "flashsale"
# gunicorn's control socket defaults to one path per user, which several instances on one
# machine (`make run PORT=…` twice, the multi-instance tests) would fight over.
control_socket_disable = True

# prometheus-client's multiprocess mode: workers write their samples under this folder
# and /metrics adds them up. Set before any worker imports prometheus_client.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="flashsale-metrics-")


def on_starting(server):
    # Samples left by an earlier master would be added to this one's.
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.unlink(os.path.join(folder, name))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_fork(server, worker):
    # libpq reads PGAPPNAME: pg_stat_activity then shows which worker holds which lock.
    os.environ.setdefault("PGAPPNAME", f"flashsale-worker-{worker.pid}")
