"""Check guarantee 1 for every product: stock + live units sold == units received."""

from django.core.management.base import BaseCommand, CommandError

from orders.selectors import stock_reconciliation

COLUMNS = ("product", "received", "stock", "sold", "difference", "")


class Command(BaseCommand):
    help = (
        "Check the never-oversell guarantee for every shop product: stock must be >= 0 and stock plus "
        "the units in non-cancelled orders must equal the units received (initial stock plus "
        "restocks). Prints one row per product and exits 1 if any product is out of balance, so "
        "it can run from cron or CI. --mismatches-only prints only the bad rows."
    )

    def add_arguments(self, parser):
        parser.add_argument("--mismatches-only", action="store_true", help="print only products that do not reconcile")

    def handle(self, *args, mismatches_only, **options):
        rows = stock_reconciliation()
        table, bad = [], 0
        for row in rows.iterator():
            ok = row["difference"] == 0 and row["stock"] >= 0
            bad += not ok
            if ok and mismatches_only:
                continue
            verdict = self.style.SUCCESS("OK") if ok else self.style.ERROR("MISMATCH")
            table.append((row["slug"], f"{row['units_received']:,}", f"{row['stock']:,}",
                          f"{row['units_sold']:,}", f"{row['difference']:+,}", verdict))
        self._print(table)
        checked = rows.count()
        if bad:
            raise CommandError(f"{bad} of {checked} products do not reconcile.")
        self.stdout.write(self.style.SUCCESS(f"All {checked} products reconcile."))

    def _print(self, table) -> None:
        if not table:
            return
        widths = [max(len(COLUMNS[i]), *(len(row[i]) for row in table)) for i in range(len(COLUMNS) - 1)]
        fmt = "  ".join([f"{{:<{widths[0]}}}", *(f"{{:>{w}}}" for w in widths[1:]), "{}"])
        self.stdout.write(fmt.format(*COLUMNS))
        for row in table:
            self.stdout.write(fmt.format(*row))
