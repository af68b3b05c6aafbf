"""The report writer of `make bench`: medians of the repeats, docs/benchmarks.md and .json."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

SIDES = ("app", "database", "load_generator")


def median_of(runs: list[dict]) -> dict:
    """The median of each number over the repeats (p99 too: the median run's tail, not the worst)."""
    summary = {key: round(statistics.median(run[key] for run in runs), 2) for key in ("per_s", "p50_ms", "p99_ms")}
    summary["server_errors"] = sum(run.get("server_errors", 0) for run in runs)
    summary["cores_busy"] = round(statistics.median(run["cores_busy"] for run in runs), 2)
    summary["cpu_ms_per_answer"] = {side: round(statistics.median(run["cpu_ms_per_answer"][side] for run in runs), 3)
                                    for side in runs[0]["cpu_ms_per_answer"]}
    return summary


def burst_of(runs: list[dict]) -> dict:
    """The burst over the repeats: the median run's wall, latencies, answers and CPU, and
    `worst`, the guarantees of the worst run (a failed verdict, then oversold units, then
    5xx answers) taken together from that one run."""
    middle = sorted(runs, key=lambda run: run["wall_s"])[(len(runs) - 1) // 2]
    worst = max(runs, key=lambda run: (not run["passed"], run["oversold"], run["server_errors"]))
    return {**middle, "walls_s": [run["wall_s"] for run in runs],
            "worst": {key: worst[key] for key in ("sold", "oversold", "server_errors", "passed")}}


def headline(r: dict) -> dict:
    """The ratios the issue's goals are stated in, all from this one run."""
    counts = r["client_counts"]

    def ratio(a, b):
        return round(a / b, 2) if b else None

    return {
        "purchases_over_pgbench": {c: ratio(r["purchases"][c]["per_s"], r["pgbench"][c]["per_s"]) for c in counts},
        "limiter_on_over_off": {c: ratio(r["purchases_limited"][c]["per_s"], r["purchases"][c]["per_s"]) for c in counts},
        "sold_out_over_stock_reads": ratio(r["sold_out"]["per_s"], r["stock_reads"]["per_s"]),
        "stock_reads_over_bare_gthread": ratio(r["stock_reads"]["per_s"], r["bare_view_gthread"]["per_s"]),
        "stock_reads_over_bare_same_server": ratio(r["stock_reads"]["per_s"], r["bare_view"]["per_s"]),
        "app_cpu_ms_per_purchase": {c: r["purchases"][c]["cpu_ms_per_answer"]["app"] for c in counts},
        "app_cpu_ms_per_sold_out": r["sold_out"]["cpu_ms_per_answer"]["app"],
        "burst_wall_s": r["burst"]["wall_s"],
        "per_round": per_round_ratios(r),
    }


# (numerator, denominator) of each ratio whose two loads run back to back in every round.
PAIRED = {"limiter_on_over_off": ("purchases-limited-{c}", "purchases-{c}"),
          "purchases_over_pgbench": ("purchases-{c}", "pgbench-{c}")}


def per_round_ratios(r: dict) -> dict:
    """Each round's own ratio of loads measured minutes apart at most, and their median: the
    machine's speed drifts between rounds, and a ratio within a round cancels most of it."""
    runs = r.get("runs", {})

    def rounds(top: str, bottom: str) -> dict:
        values = [round(a["per_s"] / b["per_s"], 2) for a, b in zip(runs[top], runs[bottom], strict=True) if b["per_s"]]
        return {"rounds": values, "median": round(statistics.median(values), 2) if values else None}

    found = {name: {c: rounds(top.format(c=c), bottom.format(c=c)) for c in r["client_counts"]}
             for name, (top, bottom) in PAIRED.items() if all(top.format(c=c) in runs for c in r["client_counts"])}
    if "sold-out" in runs and "stock-reads" in runs:
        found["sold_out_over_stock_reads"] = rounds("sold-out", "stock-reads")
    return found


def _row(label: str, clients, result: dict, rate: str) -> str:
    cpu = result["cpu_ms_per_answer"]
    split = " / ".join(f"{cpu[side]:.2f}" if side in cpu else "–" for side in SIDES)
    return f"| {label} | {clients} | {rate} | {result['p50_ms']} | {result['p99_ms']} | {split} | {result['cores_busy']} |"


def table(r: dict) -> list[str]:
    rows = [
        "| measurement | clients | per second | p50 ms | p99 ms "
        "| CPU ms per answer: app / database / load generator | cores busy |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for clients in r["client_counts"]:
        a, b, limited = r["purchases"][clients], r["pgbench"][clients], r["purchases_limited"][clients]
        rows.append(_row("(a) purchases over HTTP, one hot product", clients, a, f"{a['per_s']:,.0f}"))
        rows.append(_row("(b) the same transaction in pgbench", clients, b, f"{b['per_s']:,.0f}"))
        rows.append(_row("(a') (a) with the rate limiter on, never refusing", clients, limited, f"{limited['per_s']:,.0f}"))
    clients = r["read_clients"]
    c, d, e = r["sold_out"], r["stock_reads"], r["burst"]
    rows.append(_row("(c) sold-out answers", clients, c, f"{c['per_s']:,.0f}"))
    rows.append(_row("(d) stock endpoint reads", clients, d, f"{d['per_s']:,.0f}"))
    rows.append(_row("(d') floor: bare Django view, same server configuration", clients, r["bare_view"],
                     f"{r['bare_view']['per_s']:,.0f}"))
    rows.append(_row("(d'') floor: bare Django view, gthread 3 × 4 keep-alive", clients, r["bare_view_gthread"],
                     f"{r['bare_view_gthread']['per_s']:,.0f}"))
    rows.append(_row(f"(e) burst: 2000 buyers / 100 units, {e['in_flight']} in flight", e["in_flight"], e,
                     f"{e['wall_s']} s wall"))
    return rows


def markdown(r: dict) -> str:
    m, h, e = r["machine"], r["headline"], r["burst"]
    walls = e.get("walls_s", [e["wall_s"]])
    worst = e.get("worst", e)
    g = m["gunicorn"]
    stats = r["stats"]
    stats_line = (f"(f) stats at 100,000 orders: skipped — {stats['skipped']}." if "skipped" in stats
                  else f"(f) stats at {stats['orders']:,} orders (`GET /api/stats/`'s selector): median "
                       f"{stats['stats_median_ms']} ms (min {stats['stats_min_ms']}, max {stats['stats_max_ms']}, "
                       f"{stats['runs']} runs); the whole dashboard page's queries {stats['dashboard_median_ms']} ms.")

    def by_count(values: dict) -> str:
        return ", ".join(f"{c} clients: {v:.2f}" for c, v in values.items())

    return "\n".join([
        "# Benchmarks",
        "",
        f"Written by `make bench` on {m['cores']} cores ({m['platform']}, Python {m['python']}), gunicorn "
        f"{g['workers']} × {g['worker_class']} workers ({g['threads']} thread(s), {g['worker_connections']} "
        f"connections, keep-alive {g['keepalive']} s, database pool up to {g['db_pool_max_size']} per worker), "
        f"embedded PostgreSQL and Redis, rate limits off unless said; the load generator (stress.http1: "
        f"prepared requests, one keep-alive connection per client) shares the same cores. "
        f"Each load ran {r['seconds_per_load']:g} s, {r['repeats']} times interleaved "
        f"with the loads it is compared with (the two purchase runs back to back, and the sold-out answers "
        f"and stock reads back to back, each pair taking turns at going first); the table gives medians. "
        f"Load average at the start: "
        f"{', '.join(f'{x:.1f}' for x in m['load_average_at_start'])}.",
        "",
        *table(r),
        "",
        f"**Headline: purchases over HTTP / the pgbench ceiling of the same transaction: "
        f"{by_count(h['purchases_over_pgbench'])}.**",
        f"Sold-out answers run at {h['sold_out_over_stock_reads']:.2f} × stock reads. Stock reads run at "
        f"{h['stock_reads_over_bare_gthread']:.2f} × the bare Django view on gthread 3 × 4 keep-alive and "
        f"{h['stock_reads_over_bare_same_server']:.2f} × the bare view on the shop's own server configuration.",
        f"Rate limiter on (limits never reached) / off: {by_count(h['limiter_on_over_off'])}.",
        f"App CPU per purchase {', '.join(f'{v:.2f} ms ({c} clients)' for c, v in h['app_cpu_ms_per_purchase'].items())}; "
        f"per sold-out answer {h['app_cpu_ms_per_sold_out']:.2f} ms.",
        *_per_round_lines(h.get("per_round", {})),
        f"Burst: {worst['sold']} sold, {worst['oversold']} oversold, {worst['server_errors']} answers 5xx, verdict "
        f"{'PASS' if worst['passed'] else 'FAIL'} in the worst of {len(walls)} run(s); {e['wall_s']} s wall "
        f"(the median run; in order: {', '.join(f'{w:g}' for w in walls)} s) with {e['in_flight']} requests in flight.",
        "",
        stats_line,
        "",
        f"Total bench time {r['total_seconds']} s. Raw numbers: `docs/benchmarks.json`.",
        "",
    ])


def _per_round_lines(per_round: dict) -> list[str]:
    def show(found: dict) -> str:
        return f"{found['median']:.2f} (rounds {', '.join(f'{v:.2f}' for v in found['rounds'])})"

    names = {"purchases_over_pgbench": "purchases / pgbench", "limiter_on_over_off": "limiter on / off"}
    parts = [f"{label} {c} clients {show(found)}" for name, label in names.items()
             for c, found in per_round.get(name, {}).items()]
    if "sold_out_over_stock_reads" in per_round:
        parts.append(f"sold-out answers / stock reads {show(per_round['sold_out_over_stock_reads'])}")
    return [f"Each round's own ratio (its two loads back to back), median: {'; '.join(parts)}."] if parts else []


def write(out: Path, results: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(results))
