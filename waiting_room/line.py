"""The line itself: a few Redis keys per product, changed only by one atomic Lua script.

Keys (under the cache's prefix, so every app instance on the same Redis shares them; a
line is named by its product's id and creation moment, so a database that was reset or
restored never meets the lines of the products that had its ids before):

- `…:line`    sorted set of tickets; its order *is* the line's order;
- `…:holders` hash shopper id -> ticket (joining twice finds the same ticket);
- `…:gate`    hash: `a` admission allowance, `t` when it was last advanced, `seq` arrivals;
- `…:passes`  hash ticket -> the moment its holder first saw the admission (the pass's clock).

Order. A ticket's score decides its place. Joining before the sale starts draws a score
uniformly from the integers [0, 2**52) (`secrets`, in Python); joining at or after the start
takes 2**52 + its arrival number. So every late joiner sorts behind every early one, late
joiners sort by arrival, and the early joiners' order is the order of independent uniform
draws. Independent, identically distributed draws are exchangeable: every one of the n!
orders of n early joiners is equally likely (a tie needs two equal 52-bit draws, chance below
n**2 / 2**53, about 1e-8 for 10,000 joiners, and is broken by the random ticket suffix). No
early joiner can improve their place by joining earlier, by their user id, or by joining
twice (the second join returns the first ticket). The order exists from the first draw, but
it only matters from the start, when admission begins: this is "one shuffle at the start"
done lazily. The ticket string is the score in fixed-width hex plus a random suffix, so
sorting tickets as strings gives the line's order too (the load tool's fairness check
relies on that; clients must treat the ticket as opaque).

Admission. `a` counts admitted places in units of 1/60,000 of a ticket (one ticket per
minute per rate, one unit per millisecond): from the start it grows by `rate` units every
millisecond, so it stays an exact integer and needs no background process. Each call first
brings `a` up to `now` from `t`, never past `(line length + rate) * 60,000`: capacity unused
while nobody waits builds up to one minute's worth and no more. The place `k` (0-based) is
admitted once `a > k * 60,000`. Since the line only grows between calls, advancing at each
call is exactly what a gate advancing continuously would have done.

Time is passed in (`now_ms`) rather than read from Redis, so tests drive it explicitly and
the line uses the same clock as the sale window the shop already checks in Python.
"""

import secrets
from dataclasses import dataclass

from django.core.cache import cache
from django_redis import get_redis_connection

UNITS_PER_TICKET = 60_000  # a rate of r per minute admits r tickets per 60,000 ms
LATE_SCORE = 2**52  # every ticket taken at or after the start scores above every earlier one
KEY_TTL_MS = 7 * 24 * 3600 * 1000  # a line nobody has touched for a week is forgotten

# KEYS: line, holders, gate, passes
# ARGV: now_ms, start_ms, rate, shopper, join(1|0), early_score, suffix, advance(1|0), ttl_ms
_VISIT = """
local line, holders, gate, passes = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, start, rate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local UNIT, LATE = 60000, 4503599627370496
local a = tonumber(redis.call('HGET', gate, 'a') or '0')
local t = tonumber(redis.call('HGET', gate, 't') or ARGV[2])
local length = redis.call('ZCARD', line)
if ARGV[8] == '1' and now > start then
  local from = math.max(t, start)
  if now > from then
    local grown = math.min(a + (now - from) * rate, (length + rate - 1) * UNIT + 1)
    if grown > a then a = grown end
    t = now
  end
end
local ticket = redis.call('HGET', holders, ARGV[4])
local created = 0
if not ticket then
  if ARGV[5] ~= '1' then return {0} end
  local score
  if now < start then
    score = tonumber(ARGV[6])
  else
    score = LATE + redis.call('HINCRBY', gate, 'seq', 1)
  end
  ticket = string.format('%014x', score) .. '-' .. ARGV[7]
  redis.call('ZADD', line, score, ticket)
  redis.call('HSET', holders, ARGV[4], ticket)
  length = length + 1
  created = 1
end
redis.call('HSET', gate, 'a', string.format('%.0f', a), 't', string.format('%.0f', t))
local rank = redis.call('ZRANK', line, ticket)
local admitted = math.min(length, math.ceil(a / UNIT))
local seen = -1
if rank < admitted then
  redis.call('HSETNX', passes, ticket, ARGV[1])
  seen = tonumber(redis.call('HGET', passes, ticket))
end
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ARGV[9]) end
return {1, ticket, created, rank, admitted, length, string.format('%.0f', a), seen}
"""

# KEYS: line, gate; ARGV: now_ms, start_ms, rate. Read only: the figures staff see.
_FIGURES = """
local now, start, rate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local a = tonumber(redis.call('HGET', KEYS[2], 'a') or '0')
local t = tonumber(redis.call('HGET', KEYS[2], 't') or ARGV[2])
local length = redis.call('ZCARD', KEYS[1])
if now > start then
  local from = math.max(t, start)
  if now > from then a = math.max(a, math.min(a + (now - from) * rate, (length + rate - 1) * 60000 + 1)) end
end
return {length, math.min(length, math.ceil(a / 60000))}
"""


@dataclass(frozen=True)
class Place:
    """A shopper's ticket and where the line stands, as one atomic read saw it."""

    ticket: str
    created: bool
    rank: int  # 0-based place in the whole line, admitted tickets included
    admitted_count: int  # places 0 .. admitted_count-1 are admitted
    length: int
    allowance: int  # the gate's `a`, in units of 1/60,000 ticket
    admitted_at_ms: int | None  # when the holder first saw the admission

    @property
    def admitted(self) -> bool:
        return self.rank < self.admitted_count

    @property
    def ahead(self) -> int:
        """Not-yet-admitted tickets ahead of this one (0 once admitted)."""
        return 0 if self.admitted else self.rank - self.admitted_count

    def ms_until_admitted(self, *, now_ms: int, start_ms: int, rate: int) -> int:
        """At the current rate, how long until the gate passes this ticket's place."""
        if self.admitted:
            return 0
        missing = self.rank * UNITS_PER_TICKET - self.allowance + 1
        wait = -(-missing // rate)
        return wait + max(0, start_ms - now_ms)


def _keys(line_id: str) -> list[str]:
    return [cache.make_key(f"waiting_room:{line_id}:{part}") for part in ("line", "holders", "gate", "passes")]


def _redis():
    return get_redis_connection("default")


def visit(*, line_id: str, shopper_id: int, now_ms: int, start_ms: int, rate: int, join: bool,
          advance: bool = True, early_score: int | None = None) -> Place | None:
    """Join (`join=True`) or look up the shopper's place; None when polling without a ticket.

    `advance=False` reads without moving the gate (a closed line admits nobody new).
    `early_score` fixes the pre-start draw (tests of the order's uniformity); by default it
    is drawn from `secrets`. Raises redis' errors when Redis cannot be reached.
    """
    score = secrets.randbits(52) if early_score is None else early_score
    args = [now_ms, start_ms, rate, shopper_id, int(join), score, secrets.token_hex(4), int(advance), KEY_TTL_MS]
    result = _redis().register_script(_VISIT)(keys=_keys(line_id), args=args)
    if result[0] == 0:
        return None
    _, ticket, created, rank, admitted_count, length, allowance, seen = result
    return Place(
        ticket=ticket.decode() if isinstance(ticket, bytes) else ticket,
        created=bool(created),
        rank=int(rank),
        admitted_count=int(admitted_count),
        length=int(length),
        allowance=int(allowance),
        admitted_at_ms=int(seen) if int(seen) >= 0 else None,
    )


def figures(*, line_id: str, now_ms: int, start_ms: int, rate: int) -> tuple[int, int]:
    """(length, admitted) of one product's line right now, without changing it."""
    keys = _keys(line_id)
    length, admitted = _redis().register_script(_FIGURES)(keys=[keys[0], keys[2]], args=[now_ms, start_ms, rate])
    return int(length), int(admitted)


def reachable() -> bool:
    """Can the line be read? Any failure to reach Redis counts as no."""
    try:
        return bool(_redis().ping())
    except Exception:  # whatever the client raises, Redis is not there
        return False
