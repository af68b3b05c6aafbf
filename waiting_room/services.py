"""Writes about lines: joining, and looking up one's place (which also moves the gate).

Both read the product from PostgreSQL (so the sale status is the truth), then make one
atomic Redis call. When Redis cannot be reached the waiting room fails open, as the rate
limits do: the answer is an admission with a pass, and the purchase path does not ask for
one anyway (see `admission.check_admission`).
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone
from redis.exceptions import RedisError

from products.errors import SaleEnded, SoldOut
from products.models import SaleStatus
from waiting_room import line
from waiting_room.errors import NoTicket, WaitingRoomOff
from waiting_room.passes import PASS_SECONDS, issue_pass, moment, to_ms
from waiting_room.selectors import line_facts, line_id, start_ms

logger = logging.getLogger(__name__)

MAX_RETRY_AFTER = 30  # seconds: even far back in line, the page refreshes its position this often
OPEN_TICKET = "open"  # the ticket of everyone while the line cannot be reached
_LINE_OPEN = (SaleStatus.UPCOMING, SaleStatus.ACTIVE)


@dataclass(frozen=True)
class Standing:
    """The contract's queue object, plus what the pages need."""

    ticket: str
    position: int
    admitted: bool
    admission_pass: str | None
    pass_expires_at: datetime | None
    retry_after: int | None
    status: str
    created: bool = False
    estimated_wait_seconds: int | None = None


def join_line(*, user, product_id: int, now: datetime | None = None) -> Standing:
    """Take a ticket (or find the one already held). A sale that is over takes no one."""
    now = now or timezone.now()
    facts = _waiting_room_product(product_id)
    if facts["status"] == SaleStatus.ENDED:
        raise SaleEnded()
    if facts["status"] == SaleStatus.SOLD_OUT:
        raise SoldOut()  # the line is closed, also for those already in it
    return _standing(user.pk, product_id, facts, now, join=True)


def line_standing(*, user, product_id: int, now: datetime | None = None) -> Standing:
    """The shopper's own ticket. Raises NoTicket if they hold none."""
    now = now or timezone.now()
    return _standing(user.pk, product_id, _waiting_room_product(product_id), now, join=False)


def _waiting_room_product(product_id: int) -> dict:
    facts = line_facts(product_id)
    if not facts["waiting_room"]:
        raise WaitingRoomOff()
    return facts


def _standing(shopper_id: int, product_id: int, facts: dict, now: datetime, *, join: bool) -> Standing:
    now_ms, starts = to_ms(now), start_ms(facts["sale_starts_at"])
    rate, status = facts["admit_per_minute"], facts["status"]
    line_open = status in _LINE_OPEN
    try:
        place = line.visit(line_id=line_id(product_id, facts["created_at"]), shopper_id=shopper_id, now_ms=now_ms,
                           start_ms=starts, rate=rate, join=join, advance=line_open)
    except RedisError:
        logger.warning("waiting room unreachable; admitting shopper %s to product %s", shopper_id, product_id)
        return _open_standing(shopper_id, product_id, now_ms, status)
    if place is None:
        raise NoTicket()
    admission_pass = expires_at = retry_after = wait = None
    if place.admitted:
        expires_ms = place.admitted_at_ms + PASS_SECONDS * 1000
        admission_pass = issue_pass(shopper_id=shopper_id, product_id=product_id, expires_ms=expires_ms)
        expires_at = moment(expires_ms)
    elif line_open:
        wait_ms = place.ms_until_admitted(now_ms=now_ms, start_ms=starts, rate=rate)
        wait = -(-wait_ms // 1000)
        retry_after = min(max(wait, 1), MAX_RETRY_AFTER)
    return Standing(
        ticket=place.ticket, position=place.ahead, admitted=place.admitted, admission_pass=admission_pass,
        pass_expires_at=expires_at, retry_after=retry_after, status=status, created=place.created,
        estimated_wait_seconds=wait,
    )


def _open_standing(shopper_id: int, product_id: int, now_ms: int, status: str) -> Standing:
    expires_ms = now_ms + PASS_SECONDS * 1000
    return Standing(
        ticket=OPEN_TICKET, position=0, admitted=True,
        admission_pass=issue_pass(shopper_id=shopper_id, product_id=product_id, expires_ms=expires_ms),
        pass_expires_at=moment(expires_ms), retry_after=None, status=status,
    )
