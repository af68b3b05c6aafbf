"""`manage.py bench` (what `make bench` runs): section 7's measurements and their report."""

from pathlib import Path

from django.core.management.base import BaseCommand

from stress import bench


class Command(BaseCommand):
    help = (
        "Measure the shop on its default stack in one run (about 3 minutes): purchases/s on one hot product "
        "over HTTP at 16 and 64 clients, with the rate limiter off and on (never refusing), next to the same "
        "transaction's pgbench ceiling; sold-out answers/s and stock reads/s against a bare Django view on the "
        "same server and on gthread 3 x 4; the 2000-buyers / 100-units burst; the stats query at 100,000 "
        "orders when `bench_stats` exists; CPU per answer of the app, the database and the load generator. "
        "Migrates first, starts and stops its own servers on free loopback ports; writes OUT.md and OUT.json. "
        "Never run it against production data: it adds products, shoppers and orders."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", default="docs/benchmarks", help="report path without suffix (default docs/benchmarks)")
        parser.add_argument("--repeats", type=int, default=bench.REPEATS, help="runs of each load (median reported)")
        parser.add_argument("--seconds", type=float, default=bench.SECONDS, help="length of each sustained load")
        parser.add_argument("--steps", action="store_true",
                            help="instead: the tuning table, each serving-tier step on its own (OUT defaults to "
                                 "docs/benchmarks-steps)")

    def handle(self, *args, out, repeats, seconds, steps, **options):
        bench.REPEATS, bench.SECONDS = repeats, seconds
        if steps:
            from django.core.management import call_command

            from stress import bench_steps

            call_command("migrate", interactive=False, verbosity=0)
            out = "docs/benchmarks-steps" if out == "docs/benchmarks" else out
            results = bench_steps.run(Path(out), say=self.stdout.write)
            self.stdout.write(self.style.SUCCESS(f"Wrote {out}.md and {out}.json in {results['total_seconds']} s."))
            return
        results = bench.run(Path(out), say=self.stdout.write)
        self.stdout.write(self.style.SUCCESS(
            f"Wrote {out}.md and {out}.json in {results['total_seconds']} s "
            f"(purchases / pgbench ceiling: {results['headline']['purchases_over_pgbench']})."
        ))
