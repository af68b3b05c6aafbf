"""`manage.py race_lab`: the stock race with the unsafe, locked and conditional strategies."""

import json

from django.core.management.base import BaseCommand, CommandError

from dashboard.race_lab import MAX_BUYERS, MAX_STOCK, SESSIONS, STRATEGIES, run_race

COLUMNS = ("strategy", "buyers", "stock", "sold", "left", "oversold", "time", "buyers/s")


class Command(BaseCommand):
    help = (
        "Race BUYERS threads (each on its own database connection, at most "
        f"{SESSIONS} at once) for STOCK units of a scratch lab product, using one strategy or all: "
        "'unsafe' reads the stock, decrements in Python and writes it back (and oversells); "
        "'locked' takes the row lock (SELECT ... FOR NO KEY UPDATE) as the shop does; "
        "'conditional' runs UPDATE ... SET stock = stock - 1 WHERE stock >= 1. Prints sold, stock "
        "left, oversold units, time and throughput. Exits 0 when nothing was oversold, 1 when a "
        "strategy oversold. Lab products are never listed or sold by the shop."
    )

    def add_arguments(self, parser):
        parser.add_argument("--strategy", choices=[*STRATEGIES, "all"], default="all",
                            help="which strategy to run (default: all three, side by side)")
        parser.add_argument("--buyers", type=int, default=200, help=f"racing buyers, 1 to {MAX_BUYERS:,} (default 200)")
        parser.add_argument("--stock", type=int, default=50, help=f"units on the shelf, 0 to {MAX_STOCK:,} (default 50)")
        parser.add_argument("--json", dest="json_file", metavar="FILE", help="also write the results as JSON to FILE")

    def handle(self, *args, strategy, buyers, stock, json_file, **options):
        if not 1 <= buyers <= MAX_BUYERS:
            raise CommandError(f"--buyers must be between 1 and {MAX_BUYERS:,}.")
        if not 0 <= stock <= MAX_STOCK:
            raise CommandError(f"--stock must be between 0 and {MAX_STOCK:,}.")
        chosen = STRATEGIES if strategy == "all" else (strategy,)
        results = []
        for name in chosen:
            results.append(run_race(strategy=name, buyers=buyers, stock=stock))
        self._print(results)
        if json_file:
            with open(json_file, "w") as out:
                json.dump([result.as_dict() for result in results], out, indent=2)
        oversellers = [result.strategy for result in results if result.oversold]
        if oversellers:
            raise CommandError(f"oversold: {', '.join(oversellers)}", returncode=1)

    def _print(self, results) -> None:
        rows = [(r.strategy, f"{r.buyers:,}", f"{r.stock:,}", f"{r.sold:,}", f"{r.final_stock:,}",
                 f"{r.oversold:,}", f"{r.seconds:.3f}s", f"{r.per_second:,.0f}") for r in results]
        widths = [max(len(COLUMNS[i]), *(len(row[i]) for row in rows)) for i in range(len(COLUMNS))]
        fmt = "  ".join([f"{{:<{widths[0]}}}", *(f"{{:>{w}}}" for w in widths[1:])])
        self.stdout.write(fmt.format(*COLUMNS))
        for result, row in zip(results, rows, strict=True):
            line = fmt.format(*row)
            self.stdout.write(self.style.ERROR(line) if result.oversold else line)
