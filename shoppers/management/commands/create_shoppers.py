"""Bulk-create load-test shoppers with API tokens."""

import sys
import time

from django.core.management.base import BaseCommand, CommandError

from shoppers.services import create_shoppers


class Command(BaseCommand):
    help = (
        "Create N shopper accounts with API tokens, fast enough for 10,000 (bulk inserts). Their "
        "passwords use a deliberately fast hash meant for LOAD-TEST ACCOUNTS ONLY (production "
        "settings refuse it). Existing usernames are kept and get a token if they lack one."
    )

    def add_arguments(self, parser):
        parser.add_argument("count", type=int, help="how many shoppers (1 to 1,000,000)")
        parser.add_argument("--prefix", default="shopper", help="usernames are PREFIX-00001… (default: shopper)")
        parser.add_argument("--password", default="loadtest-pass", help="the password of every account")
        parser.add_argument("--tokens", metavar="FILE", help="write `username,token` lines to FILE")

    def handle(self, *args, count, prefix, password, tokens, **options):
        if not 1 <= count <= 1_000_000:
            raise CommandError("count must be between 1 and 1,000,000")
        started = time.perf_counter()
        show = sys.stdout.isatty()

        def progress(done, total):
            if show:
                self.stdout.write(f"\r  {done:,}/{total:,} shoppers", ending="")

        pairs = create_shoppers(count=count, prefix=prefix, password=password, on_progress=progress)
        if show:
            self.stdout.write("")
        if tokens:
            with open(tokens, "w") as out:
                out.writelines(f"{name},{key}\n" for name, key in pairs)
        elapsed = time.perf_counter() - started
        where = f", tokens in {tokens}" if tokens else ""
        self.stdout.write(self.style.SUCCESS(f"{count:,} shoppers ready in {elapsed:.1f}s{where}."))
