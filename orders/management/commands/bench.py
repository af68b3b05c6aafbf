"""`manage.py bench` (what `make bench` runs): section 7's measurements and their report."""

from pathlib import Path

from django.core.management.base import BaseCommand

from stress import bench


class Command(BaseCommand):
    help = (
        "Measure the shop on its default stack in one run (about 1.5 minutes): purchases/s on one hot "
        "product over HTTP next to the same transaction's pgbench ceiling at the same client counts, "
        "sold-out answers/s against stock reads/s, the 2000-buyers / 100-units burst, and the stats "
        "query at 100,000 orders when `bench_stats` exists. Starts and stops its own gunicorn (rate "
        "limits off) on a free loopback port; writes OUT.md and OUT.json. Never run it against "
        "production data: it adds products, shoppers and orders."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", default="docs/benchmarks", help="report path without suffix (default docs/benchmarks)")

    def handle(self, *args, out, **options):
        results = bench.run(Path(out), say=self.stdout.write)
        self.stdout.write(self.style.SUCCESS(
            f"Wrote {out}.md and {out}.json in {results['total_seconds']} s "
            f"(headline a/b = {results['headline']['purchases_over_pgbench']})."
        ))
