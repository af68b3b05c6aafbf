"""The pgbench driver of `make bench`: the single-purchase transaction's ceiling on the same database.

PGBENCH_PURCHASE is the purchase's SQL as the service sends it for one buyer (lock,
decrement, insert, commit in one transaction): purchases over HTTP divided by this is
the bench's headline. Keep it in step with orders/services.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from django.conf import settings

from stress.bench_cpu import cpu_meter, per_answer_ms

PGBENCH_PURCHASE = """\
\\set uid random(:umin, :umax)
BEGIN;
SELECT id, name, price, stock, max_per_user, sale_starts_at, sale_ends_at FROM products_product
  WHERE id = :pid FOR NO KEY UPDATE;
UPDATE products_product SET stock = stock - 1 WHERE id = :pid;
INSERT INTO orders_order (user_id, product_id, quantity, unit_price, status, remaining_stock, created_at,
  idempotency_key, request_hash) VALUES (:uid, :pid, 1, 1.00, 'confirmed', 0, now(), NULL, '');
COMMIT;
"""


def pgbench_binary() -> Path:
    import pgserver._commands

    return Path(pgserver._commands.POSTGRES_BIN_PATH) / "pgbench"


def run_pgbench(*, product_id: int, users: tuple[int, int], clients: int, seconds: float) -> dict:
    """PGBENCH_PURCHASE for `seconds` at `clients` connections: transactions/s, latency, CPU."""
    db = settings.DATABASES["default"]
    with tempfile.TemporaryDirectory(prefix="pgbench-") as scratch, cpu_meter(None) as cpu:
        script = Path(scratch) / "purchase.sql"
        script.write_text(PGBENCH_PURCHASE)
        port = ["-p", str(db["PORT"])] if db.get("PORT") else []
        finished = subprocess.run(
            [str(pgbench_binary()), "-n", "-h", db["HOST"] or "localhost", *port, "-U", db["USER"] or "postgres",
             "-c", str(clients), "-j", str(min(clients, 4)), "-T", str(int(seconds)), "-f", str(script),
             "-D", f"pid={product_id}", "-D", f"umin={users[0]}", "-D", f"umax={users[1]}",
             "-l", "--log-prefix", str(Path(scratch) / "log"), db["NAME"]],
            capture_output=True, text=True, timeout=120, check=True, cwd=scratch,
            env={**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""},
        )
        latencies = sorted(int(line.split()[2]) for log in Path(scratch).glob("log*")
                           for line in log.read_text().splitlines())
    tps = float(re.search(r"tps = ([\d.]+)", finished.stdout).group(1))

    def pick(p):
        return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] / 1000, 2) if latencies else 0.0

    return {"per_s": round(tps, 1), "p50_ms": pick(50), "p99_ms": pick(99), "transactions": len(latencies),
            "server_errors": 0, "cpu_ms_per_answer": per_answer_ms(cpu, len(latencies)),
            "cores_busy": round(sum(cpu.values()) / seconds, 2)}
