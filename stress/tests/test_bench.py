"""The bench's bookkeeping (its timings are never asserted: they live in docs/benchmarks.md)."""

import os

from stress import bench, bench_cpu, bench_pgbench, bench_report


def run(per_s, cpu_app):
    return {"per_s": per_s, "p50_ms": per_s / 10, "p99_ms": per_s / 5, "server_errors": 0, "cores_busy": 1.0,
            "cpu_ms_per_answer": {"app": cpu_app, "database": 1.0, "load_generator": 0.5}}


def test_medians_of_the_repeats():
    summary = bench_report.median_of([run(100, 3.0), run(300, 1.0), run(200, 2.0)])
    assert (summary["per_s"], summary["p99_ms"], summary["cpu_ms_per_answer"]["app"]) == (200, 40, 2.0)


def burst_run(wall, *, oversold=0, server_errors=0, passed=True):
    return {"wall_s": wall, "in_flight": 500, "p50_ms": wall * 100, "p99_ms": wall * 900, "sold": 100,
            "oversold": oversold, "server_errors": server_errors, "passed": passed, "answers": {"201 ok": 100},
            "cpu_ms_per_answer": {"app": wall}, "cores_busy": 1.8}


def test_the_burst_is_the_median_run_and_its_guarantees_the_worst_run():
    clean = bench_report.burst_of([burst_run(0.7), burst_run(0.5), burst_run(0.6)])
    assert (clean["wall_s"], clean["walls_s"], clean["cpu_ms_per_answer"]) == (0.6, [0.7, 0.5, 0.6], {"app": 0.6})
    assert clean["worst"] == {"sold": 100, "oversold": 0, "server_errors": 0, "passed": True}
    bad = bench_report.burst_of([burst_run(0.5, server_errors=1, passed=False),
                                 {**burst_run(0.9, oversold=2, server_errors=3, passed=False), "sold": 102},
                                 burst_run(0.6, server_errors=4)])
    assert bad["wall_s"] == 0.6  # the median run's own figures
    assert bad["worst"] == {"sold": 102, "oversold": 2, "server_errors": 3, "passed": False}  # one run's, together
    text = bench_report.markdown({**results(), "burst": bad})
    assert "Burst: 102 sold, 2 oversold, 3 answers 5xx, verdict FAIL in the worst of 3 run(s)" in text
    assert "in order: 0.5, 0.9, 0.6 s" in text


def test_cpu_of_a_process_tree_is_counted():
    sum(range(2_000_000))
    assert bench_cpu.tree_cpu_seconds(os.getpid()) > 0


def test_the_meter_has_no_app_side_without_a_server():
    with bench_cpu.cpu_meter(None) as used:
        sum(range(200_000))
    assert set(used) == {"database", "load_generator"} and used["load_generator"] >= 0


def results():
    r = {
        "machine": {"cores": 2, "platform": "Linux", "python": "3.11", "load_average_at_start": (1.0, 1.0, 1.0),
                    "gunicorn": {"workers": 3, "worker_class": "gevent", "threads": 1, "worker_connections": 1000,
                                 "keepalive": 5, "db_pool_max_size": 16}},
        "seconds_per_load": 3.0, "repeats": 3, "client_counts": [16, 64], "read_clients": 64,
        "purchases": {16: run(800, 1.2), 64: run(600, 1.3)},
        "purchases_limited": {16: run(760, 1.3), 64: run(570, 1.4)},
        "pgbench": {16: {**run(400, 0), "cpu_ms_per_answer": {"database": 2.0, "load_generator": 0.2}},
                    64: {**run(200, 0), "cpu_ms_per_answer": {"database": 4.0, "load_generator": 0.3}}},
        "sold_out": run(1500, 0.5), "stock_reads": run(3000, 0.3),
        "bare_view": run(2800, 0.3), "bare_view_gthread": run(2500, 0.4),
        "burst": {**run(0, 5), "wall_s": 0.9, "in_flight": 500, "sold": 100, "oversold": 0, "passed": True},
        "stats": {"skipped": "no bench_stats"},
        "total_seconds": 90.0,
    }
    r["headline"] = bench_report.headline(r)
    return r


def test_headline_ratios_come_from_the_same_run():
    h = results()["headline"]
    assert h["purchases_over_pgbench"] == {16: 2.0, 64: 3.0}
    assert h["limiter_on_over_off"] == {16: 0.95, 64: 0.95}
    assert (h["sold_out_over_stock_reads"], h["stock_reads_over_bare_gthread"]) == (0.5, 1.2)
    assert h["app_cpu_ms_per_purchase"] == {16: 1.2, 64: 1.3} and h["app_cpu_ms_per_sold_out"] == 0.5


def test_report_renders_every_measurement_and_says_when_stats_were_skipped():
    text = bench_report.markdown(results())
    for needle in ["(a) purchases over HTTP", "(b) the same transaction in pgbench", "rate limiter on",
                   "(c) sold-out answers", "(d) stock endpoint reads", "bare Django view, gthread 3 × 4",
                   "bare Django view, same server", "500 in flight", "16 clients: 2.00", "on 2 cores",
                   "3 × gevent", "skipped — no bench_stats", "| – / 2.00 / 0.20 |"]:
        assert needle in text, needle


def test_the_pgbench_script_is_one_purchase_transaction():
    script = bench_pgbench.PGBENCH_PURCHASE
    assert script.count("BEGIN;") == script.count("COMMIT;") == 1
    assert "FOR NO KEY UPDATE" in script and "INSERT INTO orders_order" in script


def test_the_floor_compared_against_is_gthread_three_by_four_with_keep_alive():
    conf = bench.gunicorn_configuration(bench.GTHREAD_FLOOR)
    assert (conf["worker_class"], conf["workers"], conf["threads"]) == ("gthread", 3, 4) and conf["keepalive"] > 0


def test_latency_percentiles_are_nearest_rank():
    from stress.load import Tally

    tally = Tally(latencies=[n / 1000 for n in range(1, 101)])  # 1 ms … 100 ms
    assert (tally.percentile(50), tally.percentile(95), tally.percentile(99)) == (0.05, 0.095, 0.099)
    assert Tally().percentile(99) == 0.0


def test_each_rounds_own_ratio_and_their_median_are_reported_beside_the_ratio_of_medians():
    r = results()
    r["runs"] = {"purchases-16": [run(800, 1), run(400, 1), run(1000, 1)],
                 "purchases-limited-16": [run(720, 1), run(380, 1), run(1000, 1)],
                 "purchases-64": [run(600, 1)] * 3, "purchases-limited-64": [run(540, 1)] * 3,
                 "pgbench-16": [run(400, 0)] * 3, "pgbench-64": [run(200, 0)] * 3,
                 "sold-out": [run(1500, 1), run(800, 1), run(1600, 1)],
                 "stock-reads": [run(2000, 1), run(1000, 1), run(2000, 1)]}
    found = bench_report.headline(r)["per_round"]
    assert found["limiter_on_over_off"][16] == {"rounds": [0.9, 0.95, 1.0], "median": 0.95}
    assert found["purchases_over_pgbench"][64] == {"rounds": [3.0, 3.0, 3.0], "median": 3.0}
    assert found["sold_out_over_stock_reads"] == {"rounds": [0.75, 0.8, 0.8], "median": 0.8}
    text = bench_report.markdown({**r, "headline": bench_report.headline(r)})
    assert "limiter on / off 16 clients 0.95 (rounds 0.90, 0.95, 1.00)" in text
    assert "Rate limiter on (limits never reached) / off: 16 clients: 0.95" in text  # the ratio of medians stays
