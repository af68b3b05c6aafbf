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
