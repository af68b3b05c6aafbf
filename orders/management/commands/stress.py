"""`manage.py stress`: a flash sale fired over HTTP at a running server on this machine."""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from flashsale.error_codes import SALE_REFUSALS
from stress.load import NotLoopback, loopback_base_url
from stress.scenario import close_sale, fire_purchases, prepare_sale, read_back, verdict
from stress.waiting_room import add_waiting_room, fire_through_line, line_checks, line_report

# code -> status of the refusals a correct sale gives a crowd bigger than its stock
EXPECTED_REFUSALS = {code.value: code.status for code in SALE_REFUSALS}

MAX_BUYERS = 100_000
MAX_CONCURRENCY = 10_000  # sockets held open by one process


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Run a flash sale against a server on this machine (127.0.0.1/localhost only): make a fresh "
        "product with --stock units and --buyers shoppers with tokens, fire their purchases over HTTP "
        "with --concurrency requests in flight (burst mode: each buyer once; with --duration: keep "
        "buying for that many seconds), then read the outcome back through the API and check the "
        "guarantees. Prints successes, failures by status and code, final stock, oversold units, "
        "throughput and latency p50/p95/p99. Exit 0 only when nothing was oversold, the guarantees "
        "hold and no answer was a 5xx; 1 otherwise. Start the server with rate limits off "
        "(RATE_LIMIT_PURCHASE_USER=off RATE_LIMIT_PURCHASE_IP=off), as `make stress` does. "
        "Example: manage.py stress --base-url http://127.0.0.1:8000 --buyers 2000 --stock 100 --concurrency 2000. "
        "With --waiting-room RATE the product has a waiting room: the report adds time in line (p50/p99), "
        "the number admitted and the share of buyers served out of ticket order."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base-url", required=True, help="the server, e.g. http://127.0.0.1:8000")
        parser.add_argument("--buyers", type=positive, required=True, help="shoppers to create (requests in burst mode)")
        parser.add_argument("--stock", type=int, required=True, help="units of the fresh product (>= 0)")
        parser.add_argument("--concurrency", type=positive, required=True, help="requests in flight at once")
        parser.add_argument("--quantity", type=positive, default=1, help="units per purchase (default 1)")
        parser.add_argument("--same-user", action="store_true",
                            help="one shopper fires all the purchases (a client hammering the buy button)")
        parser.add_argument("--duration", type=float, metavar="SECONDS",
                            help="sustained mode: keep purchases coming for this long instead of one burst")
        parser.add_argument("--waiting-room", type=positive, metavar="RATE", dest="waiting_room",
                            help="the product has a waiting room admitting RATE per minute: every buyer joins "
                                 "the line, polls as told and buys once admitted (burst mode only)")
        parser.add_argument("--json", dest="json_file", metavar="FILE", help="also write the full report as JSON to FILE")

    def handle(self, *args, base_url, buyers, stock, concurrency, quantity, same_user, duration, json_file,
               waiting_room=None, **options):
        try:
            base_url = loopback_base_url(base_url)
        except NotLoopback as exc:
            raise CommandError(str(exc)) from None
        if stock < 0:
            raise CommandError("--stock cannot be negative.")
        if buyers > MAX_BUYERS or concurrency > MAX_CONCURRENCY:
            raise CommandError(f"--buyers is at most {MAX_BUYERS:,} and --concurrency at most {MAX_CONCURRENCY:,}.")
        if duration is not None and not 0 < duration <= 3600:
            raise CommandError("--duration must be between 0 and 3600 seconds.")
        if quantity > 100:
            raise CommandError("--quantity is at most 100 (the API's per-purchase ceiling).")

        if waiting_room is not None and (duration is not None or same_user):
            raise CommandError("--waiting-room runs a burst of distinct buyers (no --duration, no --same-user).")

        live = sys.stdout.isatty()
        sale = prepare_sale(buyers=buyers, stock=stock, same_user=same_user,
                            on_progress=self._progress_shoppers if live else None)
        if waiting_room is not None:
            return self._through_waiting_room(base_url, sale, rate=waiting_room, concurrency=concurrency,
                                              quantity=quantity, json_file=json_file, live=live)
        mode = f"sustained {duration:g}s" if duration is not None else "burst"
        who = "one shopper" if same_user else f"{buyers:,} shoppers"
        self.stdout.write(f"{mode}: {who}, {stock:,} units of product {sale.product_id}, "
                          f"{concurrency:,} in flight, {quantity} per purchase -> {base_url}")
        try:
            tally = fire_purchases(base_url, sale, concurrency=concurrency, quantity=quantity, duration=duration,
                                   on_progress=self._progress_requests if live else None)
        finally:
            if live:
                self.stdout.write("")
        outcome = read_back(base_url, sale)
        close_sale(sale)
        result = verdict(sale, tally, outcome, quantity=quantity)
        report = {
            "mode": "sustained" if duration is not None else "burst",
            "base_url": base_url, "product_id": sale.product_id, "buyers": buyers, "stock": stock,
            "concurrency": concurrency, "quantity": quantity, "same_user": same_user, "duration_s": duration,
            "successes": tally.count(status=201), **tally.summary(),
            "purchases_per_s": round(tally.count(status=201) / tally.wall, 1) if tally.wall else 0.0,
            "final_stock": outcome["stock"], "orders_read_back": outcome["orders"],
            "units_sold_read_back": outcome["units_sold"], **result,
        }
        self._print(report)
        if json_file:
            self._write_json(json_file, report)
        if not result["passed"]:
            failed = ", ".join(name for name, ok in result["checks"].items() if not ok)
            raise CommandError(f"FAIL: {failed}", returncode=1)

    def _through_waiting_room(self, base_url, sale, *, rate, concurrency, quantity, json_file, live):
        add_waiting_room(sale, rate=rate)
        self.stdout.write(f"waiting room: {len(sale.tokens):,} shoppers, {sale.stock:,} units of product "
                          f"{sale.product_id}, admitting {rate:,}/min, {concurrency:,} in flight -> {base_url}")
        try:
            tally, line = fire_through_line(base_url, sale, concurrency=concurrency, quantity=quantity,
                                            on_progress=self._progress_line if live else None)
        finally:
            if live:
                self.stdout.write("")
        outcome = read_back(base_url, sale)
        close_sale(sale)
        result = verdict(sale, tally, outcome, quantity=quantity)
        lines = line_report(line, wall=tally.wall)
        result["checks"].update(line_checks(lines))
        result["passed"] = all(result["checks"].values())
        report = {
            "mode": "waiting_room", "base_url": base_url, "product_id": sale.product_id,
            "buyers": len(sale.tokens), "stock": sale.stock, "concurrency": concurrency, "quantity": quantity,
            "admit_per_minute": rate, "successes": tally.count(status=201), **tally.summary(),
            "purchases_per_s": round(tally.count(status=201) / tally.wall, 1) if tally.wall else 0.0,
            "final_stock": outcome["stock"], "orders_read_back": outcome["orders"],
            "units_sold_read_back": outcome["units_sold"], "waiting_room": lines, **result,
        }
        self._print_line(lines)
        self._print(report)
        if json_file:
            self._write_json(json_file, report)
        if not result["passed"]:
            failed = ", ".join(name for name, ok in result["checks"].items() if not ok)
            raise CommandError(f"FAIL: {failed}", returncode=1)

    def _progress_line(self, tally, line):
        admitted = sum(1 for buyer in line.buyers if buyer.admitted is not None)
        self.stdout.write(f"\r  {tally.wall:6.1f}s  admitted {admitted:,}  polls {line.polls:,}  "
                          f"201: {tally.count(status=201):,}  5xx: {tally.count(at_least=500):,}   ", ending="")
        self.stdout.flush()

    def _print_line(self, lines: dict) -> None:
        write = self.stdout.write
        write(f"  admitted            {lines['admitted']:,} (bought or tried: {lines['served']:,}; "
              f"polls: {lines['polls']:,})")
        for why, count in lines["left_without_buying"].items():
            write(f"  left the line       {count:,}  {why}")
        write(f"  selling             {lines['selling_s']:.1f} s from the first join to the last sale, "
              f"{lines['purchases_per_s_while_selling']:.1f} purchases/s")
        write(f"  time in line        p50 {lines['time_in_line_s']['p50']:.2f} s  "
              f"p99 {lines['time_in_line_s']['p99']:.2f} s")
        write(f"  served out of order {lines['served_out_of_ticket_order']:.2%} of buyers (raw); "
              f"{lines['served_out_of_ticket_order_beyond_pass_slack']} beyond the pass's {lines['pass_slack_s']} s; "
              f"admitted out of order: {lines['admitted_out_of_ticket_order']}")

    def _progress_shoppers(self, done, total):
        self.stdout.write(f"\r  creating shoppers {done:,}/{total:,}", ending="\n" if done == total else "")

    def _progress_requests(self, tally):
        self.stdout.write(
            f"\r  {tally.wall:6.1f}s  answered {tally.done:,}  in flight {tally.in_flight:,}  "
            f"201: {tally.count(status=201):,}  4xx: {tally.count(at_least=400) - tally.count(at_least=500):,}  "
            f"5xx: {tally.count(at_least=500):,}  no answer: {tally.count(status=0):,}   ",
            ending="",
        )
        self.stdout.flush()

    def _print(self, report: dict) -> None:
        write = self.stdout.write
        write(f"  successes (201)     {report['successes']:,}")
        failures = {k: n for k, n in report["answers"].items() if not k.startswith("201 ")}
        for answer, count in failures.items():
            status, code = answer.split(" ", 1)
            label = "no answer" if status == "0" else f"{status} {code}"
            if EXPECTED_REFUSALS.get(code) == int(status):
                label += " (expected: the sale turning buyers away)"
            write(f"  failures            {count:,}  {label}")
        write(f"  final stock         {report['final_stock']:,} (orders read back: {report['orders_read_back']:,})")
        write(f"  oversold units      {report['oversold']:,}")
        write(f"  wall time           {report['wall_s']:.3f} s")
        write(f"  throughput          {report['per_s']:,.0f} answers/s, {report['purchases_per_s']:,.0f} purchases/s")
        lat = report["latency_ms"]
        write(f"  latency             p50 {lat['p50']:.1f} ms  p95 {lat['p95']:.1f} ms  p99 {lat['p99']:.1f} ms")
        for name, ok in report["checks"].items():
            write(f"  {'ok  ' if ok else 'FAIL'}  {name}")
        if report["passed"]:
            write(self.style.SUCCESS("  verdict             PASS"))
        else:
            write(self.style.ERROR("  verdict             FAIL"))

    def _write_json(self, path: str, report: dict) -> None:
        with open(path, "w") as out:
            json.dump(report, out, indent=2)
            out.write("\n")
