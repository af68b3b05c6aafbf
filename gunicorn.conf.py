"""gunicorn settings for `make run`, the tests' servers, the benchmarks and the container.

gevent workers, one per core (at least 2; 2 on the 2-core machine), 1000 connections each,
keep-alive 5 s, each worker sharing a psycopg pool of at most 4 connections
(flashsale.postgres: a request waits out a burst for one, not an outage), connections
spread evenly over the workers (flashsale.accept_balance, through the hooks below: one
worker could otherwise be handed a whole crowd of keep-alive clients). Environment:
WEB_CONCURRENCY, ACCEPT_BALANCE, GUNICORN_WORKER_CLASS (default: flashsale.gunicorn_worker.ShopGeventWorker,
gevent with the HTTP-edge deadlines), GUNICORN_WORKER_CONNECTIONS, GUNICORN_THREADS
(gthread), DB_POOL_MAX_SIZE.
Record: docs/decisions/serving-tier.md.

Why gevent, first what it is for, then what was measured:

- Group commit (purchases of one hot product applied by one lock holder) needs several
  purchases inside one process at once; a sync worker holds one request.
- A slow client must not hold a worker: under sync a client that withholds its body holds
  a third of the shop; under gevent it holds a greenlet (issue 8 measured a plain GET in
  9 ms while 50 sockets withheld their bodies). gthread holds a thread of 12 per instance.
- Keep-alive: sync closes every connection after one answer.

Latest `make bench` on this configuration (2 workers, with group commit, the purchase fast
path, the local token copy with announcements, connections spread over the workers, sold-out
purchases answered from gunicorn's parsed request, a group's rate limits counted in one
round trip; fresh clone, 2-core machine, the lean load client stress/http1.py,
docs/benchmarks.md, 2026-12-05): purchases 2,076 / 3,529 per s at 16 / 64 clients (1.40 /
4.27 of pgbench's single-purchase ceiling; with the limiter on, 0.94 / 0.91 of those),
sold-out answers 9,147/s, stock reads 10,807/s (0.85 of each other; 2.22 x the bare Django
view on gthread 3 x 4 keep-alive), the 2000/100 burst with 500 in flight 0.441 s (median
of 3) with 0 x 5xx. At stop 19: 1,844 / 3,238 purchases per s (1.55 / 4.88), sold-out
answers 0.75 of stock reads, the limiter 0.92 / 0.83, the burst 0.461 s.
At stop 18, in an hour about three times slower per answer: 632 / 1,071 purchases per s,
the burst 1.087 s. At stop 17: 1,897 / 3,120 purchases per s, 13,307 stock reads/s, the
burst 0.616 s (0.26 s in its fastest hour). Round two (cores + 1
workers, before the fast path): 166 / 232 purchases per s (0.42 / 0.98), burst 7.0 s.

Measured while choosing (`manage.py bench --steps` and `make bench`). The machine
was saturated by five other engineers' test suites (load average 9-20 on 2 cores), so
rates were 10x below the issue's and moved 30-50% between repeats; CPU per answer (from
/proc) is the steadier figure, and even it was inflated by the contention:

    app CPU ms per answer (steps run)      purchase   sold-out   stock read
    sync x 5 (before)                      16.3       8.5        3.9
    gthread 3 x 4 + pool                   16.9       9.9        4.2
    gevent 3 x 1000 + pool                 20.4       8.3        6.4
    ... + no health check, token cache     20.4       10.7       6.3
    ... + stock replay before Django       18.3       8.8        2.6
    ... + pool of 4 instead of 16          17.6       9.9        3.9

    bare Django view (make bench)          gevent 3 x 1000: 1.47 ms   gthread 3 x 4: 1.49 ms
    500 keep-alive reads, one client       gevent: 1.04 ms            sync: 1.62 ms (reconnects)

- No worker class won on CPU beyond the noise: the bare view, which isolates the server,
  costs the same under gevent and gthread, and one keep-alive client costs less under
  gevent than under sync. So the choice rests on the three needs above, which only
  gevent meets; it costs no throughput we could measure.
- Pool size: 16 connections per worker let 48 transactions queue on one row; the 2000/100
  burst then answered 93 x 503 busy (lock waits past 3 s on the saturated machine). 4 per
  worker keeps the row's queue near sync's 5 and the rest of a burst waits for a
  connection in the worker; with group commit a worker needs few connections anyway.
- Workers: one per core, at least 2. gevent overlaps a worker's waits itself, so
  2 x cores + 1 only adds processes competing for the same cores (and connections to
  PostgreSQL). cores + 1 was the default until the purchase fast path and the local token
  copy made requests cheap; then, side by side on the quiet 2-core machine (3 runs each,
  3 workers against 2): purchases at 16 clients 363-459 / 349-499 per s, at 64 clients
  508-575 / 531-641, sold-out answers 649-795 / 845-886, stock reads 1,091-1,627 /
  1,686-2,120, the 2000/100 burst 4.1-4.8 / 3.5-4.5 s; app CPU per answer lower with 2
  in every row. Fewer processes also means fewer group leaders taking turns on a hot row.
- gunicorn's pure-Python HTTP parser is a third of a gevent worker's time on a replayed
  stock read (py-spy); its C parser (gunicorn_h1c) ships only as a source package here,
  so a fresh machine would need a compiler: not taken.
"""

import multiprocessing
import os

bind = os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
# HTTP edges (docs/http-edges.md): gunicorn's gevent worker with deadlines, so a slow or
# silent client holds a greenlet, never a worker. REQUEST_HEAD_TIMEOUT (seconds, default 10)
# bounds the request line and headers (flashsale.gunicorn_worker), REQUEST_BODY_TIMEOUT
# (default 10) an announced body (flashsale.request_body); both are read from the env.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "flashsale.gunicorn_worker.ShopGeventWorker")
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, multiprocessing.cpu_count())))
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
# 4 per worker keeps the transactions queued on a hot product's row lock near what 5 sync
# workers allowed (more only lengthened the lock queue, see above); the other requests of a
# burst wait for a connection in the worker, not inside the lock.
if worker_class != "sync":
    os.environ.setdefault("DB_POOL_MAX_SIZE", "4")
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
    # The workers' shared connection counts (flashsale.accept_balance), made before any fork.
    if worker_class.endswith("ShopGeventWorker"):
        from flashsale import accept_balance

        if accept_balance.enabled():
            server.accept_table = accept_balance.Table()


def pre_fork(server, worker):
    # A slot of the shared counts no live worker holds, handed to the worker about to be forked.
    table = getattr(server, "accept_table", None)
    if table is not None:
        worker.accept_table = table
        worker.accept_slot = table.assign({getattr(w, "accept_slot", None) for w in server.WORKERS.values()})
        if worker.accept_slot is None:
            server.log.warning("accept balance: no free slot, this worker accepts unbalanced")


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    table = getattr(server, "accept_table", None)
    if table is not None and getattr(worker, "accept_slot", None) is not None:
        table.release(worker.accept_slot)  # its last count must not make the others step back


def post_worker_init(worker):
    import gc

    # The app is loaded: its ~120,000 long-lived objects (Django, DRF, the URLconf, the
    # models) move to the permanent generation, so the collections a burst's garbage sets
    # off never walk them again.
    gc.freeze()
    # Hear token announcements from the start (flashsale.local_tokens), before the first crowd.
    try:
        from flashsale.local_tokens import tokens

        tokens.listen()
    except Exception:  # no Redis, no app settings: the first lookup subscribes instead
        worker.log.info("token announcements not subscribed at boot", exc_info=True)


def post_fork(server, worker):
    # libpq reads PGAPPNAME: pg_stat_activity then shows which worker holds which lock.
    os.environ.setdefault("PGAPPNAME", f"flashsale-worker-{worker.pid}")
