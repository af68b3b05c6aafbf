"""The line's order and its admission rate, driven through an explicit clock (no sleeping)."""

import itertools
from collections import Counter

import pytest

from waiting_room import line
from waiting_room.services import MAX_RETRY_AFTER, join_line, line_standing

START_MS = 1_800_000_000_000  # an arbitrary sale start for the bare-line tests


def _join(product_id, shopper_id, now_ms, *, rate=60):
    return line.visit(line_id=str(product_id), shopper_id=shopper_id, now_ms=now_ms, start_ms=START_MS,
                      rate=rate, join=True)


def _finishing_order(product_id, shoppers, now_ms):
    places = {s: line.visit(line_id=str(product_id), shopper_id=s, now_ms=now_ms, start_ms=START_MS,
                            rate=60, join=False) for s in shoppers}
    return tuple(sorted(shoppers, key=lambda s: places[s].rank))


# Chi-square with 23 degrees of freedom: P(X > 75) is about 1e-7, so a fair shuffle fails this
# test about once in ten million runs; arrival order or id order scores in the thousands.
CHI_SQUARE_BOUND = 75.0


def _chi_square(counts: Counter, cells: int, trials: int) -> float:
    expected = trials / cells
    return sum((counts.get(cell, 0) - expected) ** 2 / expected for cell in range(cells))


def test_early_joiners_are_in_a_uniformly_random_order():
    """4 shoppers join before the start, 2,400 times: each of the 24 orders comes up about 100 times."""
    shoppers = [11, 12, 13, 14]
    orders = list(itertools.permutations(shoppers))
    counts = Counter()
    trials = 2400
    for trial in range(trials):
        product_id = 10_000_000 + trial
        for offset, shopper in enumerate(shoppers):  # always the same arrival order
            _join(product_id, shopper, START_MS - 60_000 + offset)
        counts[orders.index(_finishing_order(product_id, shoppers, START_MS + 1))] += 1
    assert len(counts) == 24
    assert _chi_square(counts, 24, trials) < CHI_SQUARE_BOUND, counts


def test_the_chi_square_bound_rejects_arrival_order():
    """The test above can fail: the order shoppers arrived in (what a plain queue gives) is far past the bound."""
    counts = Counter({0: 2400})
    assert _chi_square(counts, 24, 2400) > 100 * CHI_SQUARE_BOUND


def test_late_joiners_queue_behind_early_ones_in_arrival_order():
    for shopper in range(100, 120):
        line.visit(line_id=str(1), shopper_id=shopper, now_ms=START_MS - 1000, start_ms=START_MS, rate=1, join=True)
    late = [line.visit(line_id=str(1), shopper_id=s, now_ms=START_MS + 10 * s, start_ms=START_MS, rate=1, join=True)
            for s in range(200, 210)]
    early = [line.visit(line_id=str(1), shopper_id=s, now_ms=START_MS + 5000, start_ms=START_MS, rate=1, join=False)
             for s in range(100, 120)]
    assert sorted(p.rank for p in early) == list(range(20))
    assert [p.rank for p in late] == list(range(20, 30))
    # The ticket strings sort in the line's order (the load tool's fairness figure uses this).
    tickets = [p.ticket for p in sorted(early + late, key=lambda p: p.rank)]
    assert tickets == sorted(tickets)


def test_joining_twice_returns_the_same_ticket():
    first = _join(2, 7, START_MS - 5000)
    again = _join(2, 7, START_MS + 5000)
    assert first.created and not again.created
    assert again.ticket == first.ticket and again.length == 1


def test_polling_without_a_ticket_finds_none():
    _join(3, 1, START_MS)
    assert line.visit(line_id=str(3), shopper_id=2, now_ms=START_MS, start_ms=START_MS, rate=60, join=False) is None


def test_admission_advances_at_the_rate_from_the_start():
    """6 per minute: one place every 10 s from the start, nobody before it."""
    for shopper in range(10):
        _join(4, shopper, START_MS - 1000, rate=6)

    def admitted(seconds):
        return line.figures(line_id=str(4), now_ms=START_MS + int(seconds * 1000), start_ms=START_MS, rate=6)[1]

    assert admitted(-1) == 0 and admitted(0) == 0
    assert [admitted(s) for s in (0.001, 9.999, 10.001, 19.999, 20.001, 55)] == [1, 1, 2, 2, 3, 6]
    assert admitted(3600) == 10  # never more than the line holds


def test_position_counts_the_not_yet_admitted_ahead():
    for shopper in range(5):
        _join(5, shopper, START_MS + shopper, rate=6)  # arrival order: ranks 0..4
    place = line.visit(line_id=str(5), shopper_id=4, now_ms=START_MS + 10_500, start_ms=START_MS, rate=6, join=False)
    assert (place.rank, place.admitted_count, place.ahead, place.admitted) == (4, 2, 2, False)
    first = line.visit(line_id=str(5), shopper_id=0, now_ms=START_MS + 10_500, start_ms=START_MS, rate=6, join=False)
    assert (first.ahead, first.admitted) == (0, True)


def test_unused_capacity_builds_up_to_one_minutes_worth_and_no_more():
    """An hour with nobody waiting, then a crowd: exactly `rate` of them get in at once."""
    rate = 6
    _join(6, 0, START_MS + 1000, rate=rate)  # admitted, then the line stays empty for an hour
    crowd_at = START_MS + 3_600_000
    crowd = [_join(6, shopper, crowd_at, rate=rate) for shopper in range(1, 21)]
    assert sum(p.admitted for p in crowd) == rate
    # The next one waits a full interval (10 s at 6/min), not a moment less.
    seventh = line.visit(line_id=str(6), shopper_id=rate + 1, now_ms=crowd_at + 9_999, start_ms=START_MS,
                         rate=rate, join=False)
    assert not seventh.admitted
    seventh = line.visit(line_id=str(6), shopper_id=rate + 1, now_ms=crowd_at + 10_001, start_ms=START_MS,
                         rate=rate, join=False)
    assert seventh.admitted


def test_a_short_lull_keeps_only_what_went_unused():
    """20 s with nobody waiting at 6/min builds up 2 places, not a minute's worth."""
    _join(7, 0, START_MS + 1, rate=6)  # admitted at once
    later = [_join(7, shopper, START_MS + 20_001, rate=6) for shopper in range(1, 6)]
    # From the start to 20.001 s the gate reached 3 places: the first joiner's and 2 more.
    assert [p.admitted for p in later] == [True, True, False, False, False]


@pytest.mark.django_db
def test_retry_after_tells_when_to_come_back(line_product, make_user, at):
    product = line_product(rate=6)
    shoppers = [make_user() for _ in range(3)]
    standings = [join_line(user=s, product_id=product.pk, now=at(product, 1)) for s in shoppers]
    # At 6/min, places 0..2 are admitted after 0+, 10+ and 20+ seconds from the start.
    assert [s.admitted for s in standings] == [True, False, False]
    assert [s.retry_after for s in standings] == [None, 10, 20]
    assert standings[1].position == 0 and standings[2].position == 1
    later = line_standing(user=shoppers[2], product_id=product.pk, now=at(product, 1 + 20))
    assert later.admitted and later.retry_after is None and later.admission_pass


@pytest.mark.django_db
def test_retry_after_is_capped_far_back_in_line(line_product, make_user, at):
    product = line_product(rate=1)
    for _ in range(3):
        standing = join_line(user=make_user(), product_id=product.pk, now=at(product, -600))
    assert standing.retry_after == MAX_RETRY_AFTER
    assert standing.estimated_wait_seconds > 600  # the start is 10 minutes off, then 2 places at 1/min


@pytest.mark.django_db
def test_the_rate_staff_set_is_the_rate_the_line_uses(line_product, make_user, at):
    product = line_product(rate=6)
    shoppers = [make_user() for _ in range(10)]
    for shopper in shoppers:
        join_line(user=shopper, product_id=product.pk, now=at(product, -1))
    product.admit_per_minute = 60
    product.save(update_fields=["admit_per_minute"])
    admitted = [line_standing(user=s, product_id=product.pk, now=at(product, 5.5)).admitted for s in shoppers]
    assert sum(admitted) == 6  # 5.5 s at one per second: places 0..5
