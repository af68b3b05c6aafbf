"""Measure the waiting room on the default stack (`make run`'s gunicorn, embedded PostgreSQL and Redis).

    python -m flashsale.embedded hold -- python -m stress.waiting_room_bench [--rate 600] [--json FILE]

1. A 2,000-shopper sale of 100 units through the waiting room at --rate per minute
   (`manage.py stress --waiting-room`): time in line, purchases/s, fairness.
2. What the admission check costs a purchase: the same purchase run on a plain product and on
   a waiting-room product (every buyer holding a valid pass), interleaved, medians reported;
   plus the check itself in-process (one HMAC on a valid pass).
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from decimal import Decimal

import django


def _purchase_runs(base_url: str, *, buyers: int, requests: int, concurrency: int, rounds: int) -> dict:
    """Plain product vs waiting-room product, interleaved. Passes last 5 minutes, so every
    waiting-room round gets a fresh product whose passes are collected just before it."""
    from django.utils import timezone

    from orders.services import create_shoppers
    from products.services import create_product, update_product
    from stress.http1 import prepare
    from stress.load import loopback_target, run_load

    run = f"wr-bench-{int(time.time() * 1000):x}"
    now = timezone.now()
    made = []

    def product(name, waiting_room):
        made.append(create_product(name=f"{run} {name}", price=Decimal("1.00"), stock=1_000_000,
                                   sale_starts_at=now - timedelta(minutes=1), sale_ends_at=now + timedelta(hours=1),
                                   waiting_room=waiting_room, admit_per_minute=1_000_000))
        return made[-1].pk

    tokens = [token for _, token in create_shoppers(count=buyers, prefix=run)]

    async def collect_passes(product_id):
        import aiohttp

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
            async def join(token):
                async with session.post(f"{base_url}/api/products/{product_id}/queue/",
                                        headers={"Authorization": f"Token {token}"}) as response:
                    standing = await response.json()
                    assert standing["admitted"], standing
                    return standing["pass"]

            return await asyncio.gather(*(join(token) for token in tokens))

    target = loopback_target(base_url)

    def send_for(product_id, passes):
        body = json.dumps({"product_id": product_id}).encode()
        requests = [prepare("POST", "/api/orders/", host=target.host_header, body=body,
                            headers={"Authorization": f"Token {token}", "Content-Type": "application/json",
                                     **({"Admission-Pass": p} if p else {})})
                    for token, p in zip(tokens, passes, strict=False)]
        return lambda index: requests[index % len(requests)]

    plain_id = product("plain", False)
    results = {"plain": [], "waiting_room": []}
    for round_number in range(rounds):
        wr_id = product(f"waiting room {round_number}", True)
        passes = asyncio.run(collect_passes(wr_id))
        for name, product_id, run_passes in (("plain", plain_id, [None] * buyers), ("waiting_room", wr_id, passes)):
            tally = asyncio.run(run_load(send_for(product_id, run_passes), base_url=base_url,
                                         concurrency=concurrency, total=requests))
            assert tally.count(status=201) == requests, tally.summary()
            results[name].append({"per_s": tally.done / tally.wall, "p50_ms": tally.percentile(50) * 1000,
                                  "p99_ms": tally.percentile(99) * 1000})
    for made_product in made:
        update_product(product=made_product, sale_ends_at=timezone.now())
    summary = {
        name: {key: round(statistics.median(r[key] for r in runs), 1) for key in ("per_s", "p50_ms", "p99_ms")}
        for name, runs in results.items()
    }
    summary["runs"] = results
    summary["setup"] = {"buyers": buyers, "requests_per_run": requests, "concurrency": concurrency, "rounds": rounds}
    return summary


def _check_in_process(iterations: int = 20_000) -> dict:
    from waiting_room.admission import check_admission
    from waiting_room.passes import issue_pass

    token = issue_pass(shopper_id=42, product_id=7, expires_ms=int(time.time() * 1000) + 600_000)
    started = time.perf_counter()
    for _ in range(iterations):
        check_admission(waiting_room=True, product_id=7, user_id=42, admission_pass=token)
    valid = (time.perf_counter() - started) / iterations
    started = time.perf_counter()
    for _ in range(iterations):
        check_admission(waiting_room=False, product_id=7, user_id=42, admission_pass=None)
    plain = (time.perf_counter() - started) / iterations
    return {"valid_pass_us": round(valid * 1e6, 1), "no_waiting_room_us": round(plain * 1e6, 2)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=600)
    parser.add_argument("--buyers", type=int, default=2000)
    parser.add_argument("--stock", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=200, help="requests in flight during the sale")
    parser.add_argument("--skip-sale", action="store_true")
    parser.add_argument("--json", dest="json_file")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flashsale.settings.local")
    django.setup()
    from django.core.management import CommandError, call_command

    from stress.stack import serving

    report = {"check_in_process": _check_in_process()}
    with serving() as server:
        if not args.skip_sale:
            sale_file = f"/tmp/wr-sale-{os.getpid()}.json"
            try:
                call_command("stress", "--base-url", server.url, "--buyers", str(args.buyers), "--stock",
                             str(args.stock), "--concurrency", str(args.concurrency), "--waiting-room",
                             str(args.rate), "--json", sale_file)
            except CommandError as exc:
                print(f"stress: {exc}", file=sys.stderr)  # the report is written all the same
            with open(sale_file) as f:
                report["sale"] = json.load(f)
        report["purchase_cost"] = _purchase_runs(server.url, buyers=400, requests=800, concurrency=16, rounds=3)
    print(json.dumps({k: v for k, v in report.items() if k != "sale"}, indent=2, default=str))
    if args.json_file:
        with open(args.json_file, "w") as out:
            json.dump(report, out, indent=2, default=str)
            out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
