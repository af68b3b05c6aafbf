"""gunicorn settings for `make run`, the benchmarks and the container.

Workers default to WEB_CONCURRENCY (else 2 x cores + 1); GUNICORN_WORKER_CLASS and
GUNICORN_THREADS override the class and threads.

Why sync workers, 2 x cores + 1 (measured by `make bench` on the 2-core machine, each
configuration in one run, medians of 3; the machine was shared, load average 4-7, so
differences under ~30% are noise; to repeat one: GUNICORN_WORKER_CLASS=gthread
WEB_CONCURRENCY=3 GUNICORN_THREADS=4 manage.py bench --out /tmp/gthread):

    config          purchases/s (16 / 64 clients)   sold-out/s   stock reads/s   2000/100 burst
    sync 5          58 / 93                          158          418             13.5 s
    sync 3          71 / 79                          143          424             18.9 s
    gthread 3 x 4   51 / 81                          195          554             15.1 s
    gthread 2 x 2   56 / 66                          129          469             15.2 s

- No class or count won on throughput beyond the noise: every answer is CPU-bound in
  the app, and threads under one GIL add no CPU. The app CPU per answer (read from
  /proc, robust to the shared machine) favours sync, in a second series:

    app CPU ms per answer   purchase (16 / 64)   sold-out   stock read   burst
    sync 5                  11.5 / 9.3           5.6        2.05         5.7
    gthread 3 x 4           12.9 / 12.0          6.4        2.32         6.4
    gthread 5 x 2           12.1 / 12.5          6.2        2.42         6.7

  gthread's keep-alive saves the reconnects, but its poller and thread hand-off cost more.
- A sync worker holds at most one transaction, so the workers bound how many purchases
  queue on a hot product's row lock: 5 here. pgbench shows the row is fastest with few
  waiters (250-690 transactions/s at 16 clients, 150-270 at 64 across these runs), so a small fixed
  queue is what we want; gthread 3 x 4 lets 12 queue.
- 2 x cores + 1 keeps a core busy while another worker waits on the lock or the database.
"""

import multiprocessing
import os

bind = os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
# HTTP edges (docs/http-edges.md): gunicorn's gevent worker with deadlines, so a slow or
# silent client holds a greenlet, never a worker. REQUEST_HEAD_TIMEOUT (seconds, default 10)
# bounds the request line and headers (flashsale.gunicorn_worker), REQUEST_BODY_TIMEOUT
# (default 10) an announced body (flashsale.request_body); both are read from the env.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "flashsale.gunicorn_worker.ShopGeventWorker")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))  # gthread only
# gevent: sockets (keep-alive ones included) one worker holds at once; a slow client costs a
# greenlet, not a worker.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
backlog = 4096  # a flash sale opens with thousands of connections at once
timeout = 30
graceful_timeout = 10
keepalive = 5  # gthread and gevent keep a client's connection between requests; sync closes it
# Greenlets and threads share their worker's connections through psycopg's pool (settings:
# DB_POOL_MAX_SIZE); sync workers keep one persistent connection each instead.
if worker_class != "sync":
    os.environ.setdefault("DB_POOL_MAX_SIZE", "16")
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
