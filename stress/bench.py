"""`make bench`: section 7's measurements in one run on the default stack.

(a) purchases/s and p50/p99 on one hot product, distinct buyers, over HTTP;
(b) the same transaction's ceiling from pgbench on the same database, same client counts;
(c) sold-out answers/s against (d) stock-endpoint reads/s;
(e) the 2000-buyers / 100-units burst; (f) the stats query at 100,000 orders, when the
`bench_stats` command exists. Every load is bounded (seconds or counts) and loopback only.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import runpy
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management import get_commands

from stress.load import answer_code, run_load
from stress.scenario import Sale, buy, fire_purchases, prepare_sale, read_back, verdict
from stress.stack import serving

ROOT = Path(__file__).resolve().parent.parent
CLIENT_COUNTS = (16, 64)
SECONDS = 5.0
HOT_STOCK = 1_000_000  # never sells out while measured
BUYERS = 5000

# The purchase's statements as the service sends them (lock, decrement, insert), in one transaction.
PGBENCH_PURCHASE = """\
\\set uid random(:umin, :umax)
BEGIN;
SELECT set_config('lock_timeout', '3000ms', true);
SELECT id, name, price, stock, max_per_user, sale_starts_at, sale_ends_at FROM products_product
  WHERE id = :pid AND NOT is_lab FOR NO KEY UPDATE;
UPDATE products_product SET stock = stock - 1 WHERE id = :pid;
INSERT INTO orders_order (user_id, product_id, quantity, unit_price, status, remaining_stock, created_at,
  idempotency_key, request_hash) VALUES (:uid, :pid, 1, 1.00, 'confirmed', 0, now(), NULL, '');
COMMIT;
"""


def machine() -> dict:
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "gunicorn": {key: conf[key] for key in ("workers", "worker_class", "threads")},
        "load_average_at_start": os.getloadavg(),
    }


def summarise(tally, *, ok_status: int) -> dict:
    wall = tally.wall
    ok = tally.count(status=ok_status)
    return {"per_s": round(ok / wall, 1), "p50_ms": round(tally.percentile(50) * 1000, 2),
            "p99_ms": round(tally.percentile(99) * 1000, 2), "answers": tally.summary()["answers"],
            "server_errors": tally.count(at_least=500)}


def hot_purchases(base: str, sale: Sale, clients: int) -> dict:
    tally = fire_purchases(base, sale, concurrency=clients, duration=SECONDS)
    return summarise(tally, ok_status=201)


def pgbench(sale: Sale, clients: int, users: tuple[int, int]) -> dict:
    import pgserver._commands

    binary = Path(pgserver._commands.POSTGRES_BIN_PATH) / "pgbench"
    db = settings.DATABASES["default"]
    with tempfile.TemporaryDirectory(prefix="pgbench-") as scratch:
        script = Path(scratch) / "purchase.sql"
        script.write_text(PGBENCH_PURCHASE)
        finished = subprocess.run(
            [str(binary), "-n", "-h", db["HOST"], "-U", db["USER"] or "postgres", "-c", str(clients),
             "-j", str(min(clients, 4)), "-T", str(int(SECONDS)), "-f", str(script),
             "-D", f"pid={sale.product_id}", "-D", f"umin={users[0]}", "-D", f"umax={users[1]}",
             "-l", "--log-prefix", str(Path(scratch) / "log"), db["NAME"]],
            capture_output=True, text=True, timeout=120, check=True, cwd=scratch,
        )
        latencies = sorted(int(line.split()[2]) for log in Path(scratch).glob("log*")
                           for line in log.read_text().splitlines())
    tps = float(re.search(r"tps = ([\d.]+)", finished.stdout).group(1))
    pick = lambda p: round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] / 1000, 2)  # noqa: E731
    return {"per_s": round(tps, 1), "p50_ms": pick(50), "p99_ms": pick(99), "transactions": len(latencies)}


def reads(base: str, product_id: int, clients: int) -> dict:
    url = f"{base}/api/products/{product_id}/stock/"

    async def send(session, _index):
        async with session.get(url) as response:
            return await answer_code(response)

    return summarise(asyncio.run(run_load(send, concurrency=clients, duration=SECONDS)), ok_status=200)


def sold_out_answers(base: str, sale: Sale, clients: int) -> dict:
    tally = asyncio.run(run_load(buy(base, sale), concurrency=clients, duration=SECONDS))
    return summarise(tally, ok_status=409)


def burst(base: str) -> dict:
    sale = prepare_sale(buyers=2000, stock=100)
    tally = fire_purchases(base, sale, concurrency=2000)
    outcome = read_back(base, sale)
    result = verdict(sale, tally, outcome, quantity=1)
    return {"wall_s": round(tally.wall, 3), "p50_ms": round(tally.percentile(50) * 1000, 1),
            "p99_ms": round(tally.percentile(99) * 1000, 1), "sold": outcome["units_sold"],
            "server_errors": tally.count(at_least=500), "oversold": result["oversold"], "passed": result["passed"],
            "answers": tally.summary()["answers"]}


def stats_at_scale(out: Path) -> dict:
    if "bench_stats" not in get_commands():
        return {"skipped": "the bench_stats command does not exist in this checkout"}
    report = out.with_name(out.name + "-stats.json")
    subprocess.run([os.sys.executable, "manage.py", "bench_stats", "--orders", "100000", "--json", str(report)],
                   cwd=ROOT, check=True, timeout=300)
    return json.loads(report.read_text())


def run(out: Path, say=print) -> dict:
    """Every measurement, in one run; writes OUT.md and OUT.json and returns the results."""
    started = time.perf_counter()
    results: dict = {"machine": machine(), "seconds_per_load": SECONDS, "client_counts": list(CLIENT_COUNTS)}
    say(f"{results['machine']['cores']} cores; gunicorn {results['machine']['gunicorn']}")
    hot = prepare_sale(buyers=BUYERS, stock=HOT_STOCK)
    pg_hot = prepare_sale(buyers=1, stock=HOT_STOCK)
    users = _user_id_range(hot)
    sold_out = prepare_sale(buyers=BUYERS, stock=0)
    sold_out = Sale(sold_out.product_id, 0, hot.tokens, hot.reader_token)  # same distinct buyers
    with serving() as base:
        say(f"stack up at {base}; warming up")
        asyncio.run(run_load(buy(base, pg_hot), concurrency=16, total=400))  # a connection per worker
        results["purchases"], results["pgbench"] = {}, {}
        for clients in CLIENT_COUNTS:
            results["purchases"][clients] = hot_purchases(base, hot, clients)
            say(f"(a) {clients} clients: {results['purchases'][clients]['per_s']:,} purchases/s")
            results["pgbench"][clients] = pgbench(pg_hot, clients, users)
            say(f"(b) {clients} clients: {results['pgbench'][clients]['per_s']:,} transactions/s (pgbench)")
        clients = CLIENT_COUNTS[-1]
        results["sold_out"] = sold_out_answers(base, sold_out, clients)
        say(f"(c) {results['sold_out']['per_s']:,} sold-out answers/s")
        results["stock_reads"] = reads(base, hot.product_id, clients)
        say(f"(d) {results['stock_reads']['per_s']:,} stock reads/s")
        results["burst"] = burst(base)
        say(f"(e) burst 2000/100: {results['burst']['wall_s']} s, p99 {results['burst']['p99_ms']} ms")
    results["stats"] = stats_at_scale(out)
    best_a = max(r["per_s"] for r in results["purchases"].values())
    best_b = max(r["per_s"] for r in results["pgbench"].values())
    results["headline"] = {
        "purchases_over_pgbench": round(best_a / best_b, 2) if best_b else None,
        "by_client_count": {c: round(results["purchases"][c]["per_s"] / results["pgbench"][c]["per_s"], 2)
                            for c in CLIENT_COUNTS},
        "sold_out_over_stock_reads": round(results["sold_out"]["per_s"] / results["stock_reads"]["per_s"], 2),
    }
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(results))
    return results


def _user_id_range(sale: Sale) -> tuple[int, int]:
    from rest_framework.authtoken.models import Token

    ids = Token.objects.filter(key__in=sale.tokens).values_list("user_id", flat=True)
    return min(ids), max(ids)


def markdown(r: dict) -> str:
    m, h = r["machine"], r["headline"]
    rows = [
        "| measurement | clients | per second | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for clients in r["client_counts"]:
        a, b = r["purchases"][clients], r["pgbench"][clients]
        rows.append(f"| (a) purchases over HTTP, one hot product | {clients} | {a['per_s']:,.0f} | {a['p50_ms']} | {a['p99_ms']} |")
        rows.append(f"| (b) same transaction in pgbench | {clients} | {b['per_s']:,.0f} | {b['p50_ms']} | {b['p99_ms']} |")
    clients = r["client_counts"][-1]
    c, d, e = r["sold_out"], r["stock_reads"], r["burst"]
    rows.append(f"| (c) sold-out answers | {clients} | {c['per_s']:,.0f} | {c['p50_ms']} | {c['p99_ms']} |")
    rows.append(f"| (d) stock endpoint reads | {clients} | {d['per_s']:,.0f} | {d['p50_ms']} | {d['p99_ms']} |")
    rows.append(f"| (e) burst: 2000 buyers / 100 units | 2000 | {e['wall_s']} s wall | {e['p50_ms']} | {e['p99_ms']} |")
    stats = r["stats"]
    stats_line = (f"(f) stats at 100,000 orders: skipped — {stats['skipped']}." if "skipped" in stats
                  else f"(f) stats at 100,000 orders: `{json.dumps(stats)}`")
    return "\n".join([
        "# Benchmarks",
        "",
        f"Written by `make bench` on {m['cores']} cores ({m['platform']}, Python {m['python']}), gunicorn "
        f"{m['gunicorn']['workers']} × {m['gunicorn']['worker_class']} workers, {m['gunicorn']['threads']} "
        f"thread(s) each, embedded PostgreSQL and Redis, rate limits off; the load generator shares the "
        f"same cores. Each load ran {r['seconds_per_load']:g} s. Load average at the start: "
        f"{', '.join(f'{x:.1f}' for x in m['load_average_at_start'])}.",
        "",
        *rows,
        "",
        f"**Headline: purchases over HTTP reach {h['purchases_over_pgbench']:.2f} of the pgbench ceiling** "
        f"(best of each; by client count: "
        f"{', '.join(f'{c}: {v:.2f}' for c, v in h['by_client_count'].items())}).",
        f"Sold-out answers run at {h['sold_out_over_stock_reads']:.2f} × stock reads.",
        f"Burst: {e['sold']} sold, {e['oversold']} oversold, {e['server_errors']} answers 5xx, verdict "
        f"{'PASS' if e['passed'] else 'FAIL'}.",
        "",
        stats_line,
        "",
        f"Total bench time {r['total_seconds']} s. Raw numbers: `docs/benchmarks.json`.",
        "",
    ])
