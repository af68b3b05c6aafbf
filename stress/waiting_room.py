"""`manage.py stress --waiting-room RATE`: the same flash sale, through the waiting room.

The fresh product gets a waiting room admitting RATE per minute and opens a few seconds
after setup, so the first wave of buyers joins before the start (and is shuffled). Every
buyer joins the line, sleeps for the `retry_after` it is given, polls again, and buys with
its pass once admitted; a buyer whose line closes (sold out) leaves. Requests in flight are
bounded by --concurrency; waiting buyers hold no request.

Fairness is measured two ways from what the buyers saw, in ticket order (tickets sort as
the line does):
- admitted out of ticket order: a buyer had its "admitted" answer in hand before an
  earlier ticket even asked the question that was answered "still waiting". Comparing the
  one's receive time with the other's send time makes this a proof, not a race of
  deliveries. The line admits in ticket order by construction, so this must be 0;
- served out of ticket order: a buyer's purchase went out before that of an earlier ticket.
  Polling granularity (whole seconds) and the pass's validity let an earlier-admitted buyer
  buy later, so this is reported raw and beyond the pass's validity (PASS_SECONDS), where
  it must be 0.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
from django.utils import timezone

from products.models import Product
from products.services import update_product
from stress.load import TRANSPORT_ERROR, Tally, error_code, raise_open_files_limit
from stress.scenario import Sale
from waiting_room.passes import PASS_SECONDS

OPENS_IN = timedelta(seconds=5)  # the first wave of joins lands before the start


@dataclass
class Buyer:
    ticket: str | None = None
    joined: float = 0.0
    last_waiting: float = -math.inf  # the last moment it was seen not yet admitted
    admitted: float | None = None  # the first moment it was seen admitted
    sent: float | None = None  # when its purchase went out
    outcome: tuple[int, str] | None = None  # the purchase's (status, code)
    answered: float | None = None  # when the purchase's answer came
    left: str | None = None  # why it never bought: the line's answer


@dataclass
class LineTally:
    buyers: list[Buyer]
    line_answers: Counter = field(default_factory=Counter)  # joins and polls: (status, code) -> n
    polls: int = 0


def add_waiting_room(sale: Sale, *, rate: int) -> None:
    """Turn the fresh product's waiting room on at `rate` per minute; the sale opens OPENS_IN from now."""
    update_product(product=Product.objects.get(pk=sale.product_id), waiting_room=True, admit_per_minute=rate,
                   sale_starts_at=timezone.now() + OPENS_IN)


def fire_through_line(base_url: str, sale: Sale, *, concurrency: int, quantity: int = 1,
                      on_progress=None) -> tuple[Tally, LineTally]:
    return asyncio.run(_run(base_url, sale, concurrency=concurrency, quantity=quantity, on_progress=on_progress))


async def _run(base_url, sale, *, concurrency, quantity, on_progress, timeout=60.0):
    raise_open_files_limit(concurrency + 512)
    queue_url = f"{base_url}/api/products/{sale.product_id}/queue/"
    order_url = f"{base_url}/api/orders/"
    body = {"product_id": sale.product_id, "quantity": quantity}
    tally = Tally()
    line = LineTally(buyers=[Buyer() for _ in sale.tokens])
    slots = asyncio.Semaphore(concurrency)

    async def request(session, method, url, **kwargs):
        """(status, code, queue object or None, the moment the request went out past the slot limit)."""
        async with slots:
            sent = time.perf_counter()
            try:
                async with session.request(method, url, **kwargs) as response:
                    body = await response.read()
                    data = json.loads(body) if response.status in (200, 201) and "queue" in url else None
                    return response.status, error_code(response.status, body), data, sent
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                return TRANSPORT_ERROR, type(exc).__name__, None, sent

    async def one_buyer(session, buyer: Buyer, token: str):
        auth = {"Authorization": f"Token {token}"}
        buyer.joined = time.perf_counter()
        status, code, standing, asked = await request(session, "POST", queue_url, headers=auth)
        line.line_answers[(status, code)] += 1
        while True:
            now = time.perf_counter()
            if standing is None:
                buyer.left = f"{status} {code}"
                return
            buyer.ticket = standing["ticket"]
            if standing["admitted"]:
                buyer.admitted = now
                break
            buyer.last_waiting = asked  # the server answered "waiting" at some moment after this
            if standing["retry_after"] is None:
                buyer.left = f"line closed: {standing['status']}"
                return
            await asyncio.sleep(standing["retry_after"])
            status, code, standing, asked = await request(session, "GET", queue_url, headers=auth)
            line.line_answers[(status, code)] += 1
            line.polls += 1
        tally.in_flight += 1
        status, code, _, buyer.sent = await request(session, "POST", order_url, json=body,
                                                    headers={**auth, "Admission-Pass": standing["pass"]})
        tally.in_flight -= 1
        if status != TRANSPORT_ERROR:
            tally.latencies.append(time.perf_counter() - buyer.sent)
        tally.answers[(status, code)] += 1
        buyer.outcome, buyer.answered = (status, code), time.perf_counter()

    async def report():
        while True:
            await asyncio.sleep(0.5)
            on_progress(tally, line)

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0, ttl_dns_cache=None)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        reporter = asyncio.create_task(report()) if on_progress else None
        tally.started = time.perf_counter()
        await asyncio.gather(*(one_buyer(session, buyer, token) for buyer, token in zip(line.buyers, sale.tokens, strict=False)))
        tally.finished = time.perf_counter()
        if reporter:
            reporter.cancel()
            on_progress(tally, line)
    return tally, line


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(1, min(len(ordered), math.ceil(p / 100 * len(ordered)))) - 1]


def line_report(line: LineTally, *, wall: float) -> dict:
    """Time in line, how many were admitted, and the fairness figures (see the module's docstring)."""
    admitted = [b for b in line.buyers if b.admitted is not None]
    in_line = [b.admitted - b.joined for b in admitted]
    by_ticket = sorted((b for b in line.buyers if b.ticket), key=lambda b: b.ticket)
    admitted_out_of_order = 0
    latest_waiting = -math.inf
    for buyer in by_ticket:  # did an earlier ticket still wait after this one was admitted?
        if buyer.admitted is not None and latest_waiting > buyer.admitted:
            admitted_out_of_order += 1
        latest_waiting = max(latest_waiting, buyer.last_waiting)
    served = [b for b in by_ticket if b.sent is not None]
    out_of_order_raw = out_of_order_beyond_slack = 0
    latest_sent = -math.inf
    for buyer in served:  # did an earlier ticket's purchase go out after this one's?
        if latest_sent > buyer.sent:
            out_of_order_raw += 1
        if latest_sent > buyer.sent + PASS_SECONDS:
            out_of_order_beyond_slack += 1
        latest_sent = max(latest_sent, buyer.sent)
    sold = sorted(b.answered for b in line.buyers if b.outcome and b.outcome[0] == 201)
    selling = sold[-1] - min(b.joined for b in line.buyers) if sold else 0.0
    line_5xx = sum(n for (status, _), n in line.line_answers.items() if status >= 500)
    line_unanswered = sum(n for (status, _), n in line.line_answers.items() if status == TRANSPORT_ERROR)
    return {
        "admitted": len(admitted),
        "served": len(served),
        "left_without_buying": dict(Counter(b.left for b in line.buyers if b.left)),
        "time_in_line_s": {"p50": round(_percentile(in_line, 50), 3), "p99": round(_percentile(in_line, 99), 3)},
        "polls": line.polls,
        # From the first join to the last sale: how fast the line let the stock go.
        "selling_s": round(selling, 3),
        "purchases_per_s_while_selling": round(len(sold) / selling, 2) if selling else 0.0,
        "line_answers": {f"{status} {code}": n for (status, code), n in sorted(line.line_answers.items())},
        "admitted_out_of_ticket_order": admitted_out_of_order,
        "served_out_of_ticket_order": round(out_of_order_raw / len(served), 4) if served else 0.0,
        "served_out_of_ticket_order_beyond_pass_slack": out_of_order_beyond_slack,
        "pass_slack_s": PASS_SECONDS,
        "line_5xx": line_5xx,
        "line_unanswered": line_unanswered,
        "wall_s": round(wall, 3),
    }


def line_checks(report: dict) -> dict:
    return {
        "nobody admitted out of ticket order": report["admitted_out_of_ticket_order"] == 0,
        "nobody served out of ticket order beyond the pass's validity":
            report["served_out_of_ticket_order_beyond_pass_slack"] == 0,
        "no 5xx answers from the line": report["line_5xx"] == 0,
        "every line request answered": report["line_unanswered"] == 0,
    }
