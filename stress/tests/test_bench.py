"""The bench's bookkeeping (its timings are never asserted: they live in docs/benchmarks.md)."""

import os

from stress import bench


def run(per_s, cpu_app):
    return {"per_s": per_s, "p50_ms": per_s / 10, "p99_ms": per_s / 5, "server_errors": 0, "cores_busy": 1.0,
            "cpu_ms_per_answer": {"app": cpu_app, "database": 1.0, "load_generator": 0.5}}


def test_medians_of_the_repeats():
    summary = bench.median_of([run(100, 3.0), run(300, 1.0), run(200, 2.0)])
    assert (summary["per_s"], summary["p99_ms"], summary["cpu_ms_per_answer"]["app"]) == (200, 40, 2.0)


def test_cpu_of_a_process_tree_is_counted():
    sum(range(2_000_000))
    assert bench.tree_cpu_seconds(os.getpid()) > 0


def test_report_renders_every_measurement_and_says_when_stats_were_skipped():
    results = {
        "machine": {"cores": 2, "platform": "Linux", "python": "3.11", "load_average_at_start": (1.0, 1.0, 1.0),
                    "gunicorn": {"workers": 5, "worker_class": "sync", "threads": 1}},
        "seconds_per_load": 3.0, "repeats": 3, "client_counts": [16, 64],
        "purchases": {16: run(80, 12), 64: run(60, 12)},
        "pgbench": {16: {**run(400, 0), "cpu_ms_per_answer": {"database": 2.0, "load_generator": 0.2}},
                    64: {**run(200, 0), "cpu_ms_per_answer": {"database": 4.0, "load_generator": 0.3}}},
        "sold_out": run(150, 5), "stock_reads": run(400, 2),
        "burst": {**run(0, 5), "wall_s": 9.5, "sold": 100, "oversold": 0, "passed": True},
        "stats": {"skipped": "no bench_stats"},
        "headline": {"purchases_over_pgbench": 0.2, "by_client_count": {16: 0.2, 64: 0.3},
                     "sold_out_over_stock_reads": 0.38},
        "total_seconds": 90.0,
    }
    text = bench.markdown(results)
    for needle in ["(a) purchases over HTTP", "(b) the same transaction in pgbench", "(c) sold-out answers",
                   "(d) stock endpoint reads", "(e) burst", "0.20 of the pgbench ceiling", "on 2 cores",
                   "skipped — no bench_stats", "| – / 2.00 / 0.20 |"]:
        assert needle in text


def test_latency_percentiles_are_nearest_rank():
    from stress.load import Tally

    tally = Tally(latencies=[n / 1000 for n in range(1, 101)])  # 1 ms … 100 ms
    assert (tally.percentile(50), tally.percentile(95), tally.percentile(99)) == (0.05, 0.095, 0.099)
    assert Tally().percentile(99) == 0.0
