"""`make bench`: section 7's measurements in one run on the default stack.

(a) purchases/s and p50/p99 on one hot product, distinct buyers, over HTTP;
(b) the same transaction's ceiling from pgbench on the same database, same client counts;
(c) sold-out answers/s against (d) stock-endpoint reads/s;
(e) the 2000-buyers / 100-units burst; (f) the stats query at 100,000 orders, when the
`bench_stats` command exists. Every load is bounded (seconds or counts) and loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management import get_commands

from stress.load import answer_code, run_load
from stress.scenario import Sale, buy, close_sale, fire_purchases, prepare_sale, read_back, verdict
from flashsale import embedded
from stress.stack import serving

ROOT = Path(__file__).resolve().parent.parent
CLIENT_COUNTS = (16, 64)
SECONDS = 3.0
# The machine is shared and noisy: every load runs REPEATS times, interleaved with the load it
# is compared with (a with b, c with d), and the report gives the medians.
REPEATS = 3
HOT_STOCK = 1_000_000  # never sells out while measured
BUYERS = 5000

# The purchase's statements as the service sends them (lock, decrement, insert), in one transaction.
PGBENCH_PURCHASE = """\
\\set uid random(:umin, :umax)
BEGIN;
SELECT set_config('lock_timeout', '3000ms', true);
SELECT id, name, price, stock, max_per_user, sale_starts_at, sale_ends_at FROM products_product
  WHERE id = :pid FOR NO KEY UPDATE;
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


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU used so far by a process, its reaped children and its live children (one level:
    gunicorn's workers, PostgreSQL's backends)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid == root_pid:
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        elif ppid == root_pid:
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


@contextlib.contextmanager
def cpu_meter(server_pid: int | None):
    """CPU seconds spent by the app server, the database and this load generator (+ pgbench) meanwhile."""
    import resource

    def sample():
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (tree_cpu_seconds(server_pid) if server_pid else 0.0,
                tree_cpu_seconds(embedded.postgres_pid() or -1),
                own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime)

    used: dict = {}
    before = sample()
    yield used
    after = sample()
    used.update(zip(("app", "database", "load_generator"), (b - a for a, b in zip(before, after))))


def summarise(tally, *, ok_status: int, cpu: dict) -> dict:
    wall = tally.wall
    ok = tally.count(status=ok_status)
    answered = max(tally.done, 1)
    return {"per_s": round(ok / wall, 1), "p50_ms": round(tally.percentile(50) * 1000, 2),
            "p99_ms": round(tally.percentile(99) * 1000, 2), "answers": tally.summary()["answers"],
            "server_errors": tally.count(at_least=500),
            # What bounds it: CPU per answer on each side, and how busy the machine's cores were.
            "cpu_ms_per_answer": {side: round(seconds * 1000 / answered, 2) for side, seconds in cpu.items()},
            "cores_busy": round(sum(cpu.values()) / wall, 2)}


def hot_purchases(server, sale: Sale, clients: int) -> dict:
    with cpu_meter(server.pid) as cpu:
        tally = fire_purchases(server.url, sale, concurrency=clients, duration=SECONDS)
    return summarise(tally, ok_status=201, cpu=cpu)


def pgbench(sale: Sale, clients: int, users: tuple[int, int]) -> dict:
    import pgserver._commands

    binary = Path(pgserver._commands.POSTGRES_BIN_PATH) / "pgbench"
    db = settings.DATABASES["default"]
    with tempfile.TemporaryDirectory(prefix="pgbench-") as scratch, cpu_meter(None) as cpu:
        script = Path(scratch) / "purchase.sql"
        script.write_text(PGBENCH_PURCHASE)
        port = ["-p", str(db["PORT"])] if db.get("PORT") else []
        finished = subprocess.run(
            [str(binary), "-n", "-h", db["HOST"] or "localhost", *port, "-U", db["USER"] or "postgres",
             "-c", str(clients),
             "-j", str(min(clients, 4)), "-T", str(int(SECONDS)), "-f", str(script),
             "-D", f"pid={sale.product_id}", "-D", f"umin={users[0]}", "-D", f"umax={users[1]}",
             "-l", "--log-prefix", str(Path(scratch) / "log"), db["NAME"]],
            capture_output=True, text=True, timeout=120, check=True, cwd=scratch,
            env={**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""},
        )
        latencies = sorted(int(line.split()[2]) for log in Path(scratch).glob("log*")
                           for line in log.read_text().splitlines())
    tps = float(re.search(r"tps = ([\d.]+)", finished.stdout).group(1))
    pick = lambda p: round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] / 1000, 2)  # noqa: E731
    return {"per_s": round(tps, 1), "p50_ms": pick(50), "p99_ms": pick(99), "transactions": len(latencies),
            "cpu_ms_per_answer": {side: round(seconds * 1000 / max(len(latencies), 1), 2)
                                  for side, seconds in cpu.items() if side != "app"},
            "cores_busy": round(sum(cpu.values()) / SECONDS, 2)}


def reads(server, product_id: int, clients: int) -> dict:
    url = f"{server.url}/api/products/{product_id}/stock/"

    async def send(session, _index):
        async with session.get(url) as response:
            return await answer_code(response)

    with cpu_meter(server.pid) as cpu:
        tally = asyncio.run(run_load(send, concurrency=clients, duration=SECONDS))
    return summarise(tally, ok_status=200, cpu=cpu)


def sold_out_answers(server, sale: Sale, clients: int) -> dict:
    with cpu_meter(server.pid) as cpu:
        tally = asyncio.run(run_load(buy(server.url, sale), concurrency=clients, duration=SECONDS))
    return summarise(tally, ok_status=409, cpu=cpu)


def burst(server) -> dict:
    sale = prepare_sale(buyers=2000, stock=100)
    with cpu_meter(server.pid) as cpu:
        tally = fire_purchases(server.url, sale, concurrency=2000)
    outcome = read_back(server.url, sale)
    close_sale(sale)
    result = verdict(sale, tally, outcome, quantity=1)
    return {"wall_s": round(tally.wall, 3), "p50_ms": round(tally.percentile(50) * 1000, 1),
            "p99_ms": round(tally.percentile(99) * 1000, 1), "sold": outcome["units_sold"],
            "server_errors": tally.count(at_least=500), "oversold": result["oversold"], "passed": result["passed"],
            "answers": tally.summary()["answers"],
            "cpu_ms_per_answer": {side: round(seconds * 1000 / 2000, 2) for side, seconds in cpu.items()},
            "cores_busy": round(sum(cpu.values()) / tally.wall, 2)}


def stats_at_scale(out: Path) -> dict:
    if "bench_stats" not in get_commands():
        return {"skipped": "the bench_stats command does not exist in this checkout"}
    report = out.with_name(out.name + "-stats.json")
    subprocess.run([sys.executable, "manage.py", "bench_stats", "--orders", "100000", "--json", str(report)],
                   cwd=ROOT, check=True, timeout=300)
    return json.loads(report.read_text())


def run(out: Path, say=print) -> dict:
    """Every measurement, in one run; writes OUT.md and OUT.json and returns the results."""
    started = time.perf_counter()
    results: dict = {"machine": machine(), "seconds_per_load": SECONDS, "repeats": REPEATS,
                     "client_counts": list(CLIENT_COUNTS)}
    say(f"{results['machine']['cores']} cores; gunicorn {results['machine']['gunicorn']}")
    hot = prepare_sale(buyers=BUYERS, stock=HOT_STOCK)
    pg_hot = prepare_sale(buyers=1, stock=HOT_STOCK)
    users = _user_id_range(hot)
    sold_out = prepare_sale(buyers=1, stock=0)
    sold_out = Sale(sold_out.product_id, 0, hot.tokens, hot.reader_token)  # same distinct buyers
    with serving() as server:
        say(f"stack up at {server.url}; warming up")
        asyncio.run(run_load(buy(server.url, pg_hot), concurrency=16, total=400))  # a connection per worker
        runs: dict[str, list] = {}
        for repeat in range(REPEATS):
            for clients in CLIENT_COUNTS:
                runs.setdefault(f"a{clients}", []).append(hot_purchases(server, hot, clients))
                runs.setdefault(f"b{clients}", []).append(pgbench(pg_hot, clients, users))
                say(f"  run {repeat + 1}/{REPEATS}, {clients} clients: {runs[f'a{clients}'][-1]['per_s']:,} "
                    f"purchases/s over HTTP, {runs[f'b{clients}'][-1]['per_s']:,}/s in pgbench")
            runs.setdefault("c", []).append(sold_out_answers(server, sold_out, CLIENT_COUNTS[-1]))
            runs.setdefault("d", []).append(reads(server, hot.product_id, CLIENT_COUNTS[-1]))
            say(f"  run {repeat + 1}/{REPEATS}: {runs['c'][-1]['per_s']:,} sold-out answers/s, "
                f"{runs['d'][-1]['per_s']:,} stock reads/s")
        results["purchases"] = {c: median_of(runs[f"a{c}"]) for c in CLIENT_COUNTS}
        results["pgbench"] = {c: median_of(runs[f"b{c}"]) for c in CLIENT_COUNTS}
        results["sold_out"], results["stock_reads"] = median_of(runs["c"]), median_of(runs["d"])
        results["runs"] = runs
        results["burst"] = burst(server)
        say(f"(e) burst 2000/100: {results['burst']['wall_s']} s, p99 {results['burst']['p99_ms']} ms")
    for sale in (hot, pg_hot, sold_out):
        close_sale(sale)
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


def median_of(runs: list[dict]) -> dict:
    """The median of each number over the repeats (p99 too: the median run's tail, not the worst)."""
    keys = ("per_s", "p50_ms", "p99_ms")
    summary = {key: round(statistics.median(run[key] for run in runs), 2) for key in keys}
    summary["server_errors"] = sum(run.get("server_errors", 0) for run in runs)
    summary["cores_busy"] = round(statistics.median(run["cores_busy"] for run in runs), 2)
    summary["cpu_ms_per_answer"] = {side: round(statistics.median(run["cpu_ms_per_answer"][side] for run in runs), 2)
                                    for side in runs[0]["cpu_ms_per_answer"]}
    return summary


def _user_id_range(sale: Sale) -> tuple[int, int]:
    from rest_framework.authtoken.models import Token

    ids = Token.objects.filter(key__in=sale.tokens).values_list("user_id", flat=True)
    return min(ids), max(ids)


def markdown(r: dict) -> str:
    m, h = r["machine"], r["headline"]
    rows = [
        "| measurement | clients | per second | p50 ms | p99 ms | CPU ms per answer: app / database / load generator | cores busy |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]

    def row(label, clients, result, rate):
        cpu = result["cpu_ms_per_answer"]
        split = " / ".join(f"{cpu[side]:.2f}" if side in cpu else "–" for side in ("app", "database", "load_generator"))
        return f"| {label} | {clients} | {rate} | {result['p50_ms']} | {result['p99_ms']} | {split} | {result['cores_busy']} |"

    for clients in r["client_counts"]:
        a, b = r["purchases"][clients], r["pgbench"][clients]
        rows.append(row("(a) purchases over HTTP, one hot product", clients, a, f"{a['per_s']:,.0f}"))
        rows.append(row("(b) the same transaction in pgbench", clients, b, f"{b['per_s']:,.0f}"))
    clients = r["client_counts"][-1]
    c, d, e = r["sold_out"], r["stock_reads"], r["burst"]
    rows.append(row("(c) sold-out answers", clients, c, f"{c['per_s']:,.0f}"))
    rows.append(row("(d) stock endpoint reads", clients, d, f"{d['per_s']:,.0f}"))
    rows.append(row("(e) burst: 2000 buyers / 100 units", 2000, e, f"{e['wall_s']} s wall"))
    stats = r["stats"]
    stats_line = (f"(f) stats at 100,000 orders: skipped — {stats['skipped']}." if "skipped" in stats
                  else f"(f) stats at {stats['orders']:,} orders (`GET /api/stats/`'s selector): median "
                       f"{stats['stats_median_ms']} ms (min {stats['stats_min_ms']}, max {stats['stats_max_ms']}, "
                       f"{stats['runs']} runs); the whole dashboard page's queries {stats['dashboard_median_ms']} ms.")
    return "\n".join([
        "# Benchmarks",
        "",
        f"Written by `make bench` on {m['cores']} cores ({m['platform']}, Python {m['python']}), gunicorn "
        f"{m['gunicorn']['workers']} × {m['gunicorn']['worker_class']} workers, {m['gunicorn']['threads']} "
        f"thread(s) each, embedded PostgreSQL and Redis, rate limits off; the load generator shares the "
        f"same cores. Each load ran {r['seconds_per_load']:g} s, {r['repeats']} times interleaved with the load "
        f"it is compared with; the table gives medians. Load average at the start: "
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
