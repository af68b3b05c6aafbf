"""Group commit: a group of buyers applied in one transaction answers each as one-by-one would.

The decision rule alone, then a Hypothesis model of groups against the one-by-one rule on
real PostgreSQL, then real threads that line up behind a held row lock and form groups.
"""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flashsale.api_errors import DATABASE_DOWN
from flashsale.errors import Busy, DomainError, InvalidInput, RateLimited
from orders import group_commit
from orders.errors import IdempotencyKeyInUse, IdempotencyKeyReused, PurchaseLimitReached
from orders.group_commit import Buyer, Gathering
from orders.models import Order, OrderStatus
from orders.services import _buy_group, decide_group, purchase
from products.errors import InsufficientStock, SaleEnded, SaleNotStarted, SoldOut
from products.services import create_product
from tests.concurrency import row_locked_elsewhere, start_at_once
from tests.faults import orders_insert_fails
from tests.invariants import assert_stock_reconciles
from tests.servers import wait_until

NOW = timezone.now()


def _decide(requests, *, stock, max_per_user=None, held=None, starts_at=None, ends_at=None):
    return decide_group(stock=stock, max_per_user=max_per_user, starts_at=starts_at, ends_at=ends_at,
                        units_held=held or {}, requests=requests, now=NOW)


def _kinds(decisions):
    return [d if isinstance(d, int) else type(d) for d in decisions]


def test_stock_refusals_fall_where_one_by_one_puts_them():
    decisions = _decide([(1, 3), (2, 3), (3, 2), (4, 1)], stock=5)
    assert _kinds(decisions) == [2, InsufficientStock, 0, SoldOut]


def test_a_shopper_earlier_in_the_group_counts_against_their_limit():
    decisions = _decide([(1, 2), (2, 1), (1, 1), (2, 1), (2, 1)], stock=10, max_per_user=2, held={2: 0})
    assert _kinds(decisions) == [8, 7, PurchaseLimitReached, 6, PurchaseLimitReached]


def test_units_held_before_the_group_count_and_the_limit_comes_before_stock():
    decisions = _decide([(1, 1), (2, 1)], stock=0, max_per_user=1, held={1: 1})
    assert _kinds(decisions) == [PurchaseLimitReached, SoldOut]


def test_the_window_comes_before_everything():
    ended = _decide([(1, 1)], stock=5, ends_at=NOW - timedelta(seconds=1))
    upcoming = _decide([(1, 1)], stock=5, max_per_user=1, held={1: 1}, starts_at=NOW + timedelta(minutes=1))
    assert _kinds(ended) == [SaleEnded] and _kinds(upcoming) == [SaleNotStarted]


def _line_up(product_id, count, apply, prepare=None, before_go=None):
    """`count` threads buy through the combiner; the first one's apply waits until the rest queue
    (and `before_go` has run)."""
    buyers = [Buyer(user_id=n, quantity=1) for n in range(count)]
    answers = [None] * count

    def run(index):
        try:
            answers[index] = group_commit.buy_in_group(product_id, buyers[index], apply, prepare)
        except BaseException as exc:  # recorded and asserted on by the test
            answers[index] = exc

    threads = [threading.Thread(target=run, args=(0,))]
    threads[0].start()
    wait_until(lambda: group_commit.queued_buyers(product_id) == 0 and started.is_set(), what="the leader")
    for index in range(1, count):
        threads.append(threading.Thread(target=run, args=(index,)))
        threads[-1].start()
        wait_until(lambda index=index: group_commit.queued_buyers(product_id) == index, what="a buyer to queue")
    if before_go is not None:
        before_go()
    go.set()
    for thread in threads:
        thread.join(timeout=30)
    return buyers, answers


started, go = threading.Event(), threading.Event()


@pytest.fixture
def fresh_gate():
    started.clear()
    go.clear()
    group_commit.reset_group_sizes()


def test_the_combiner_answers_each_buyer_its_own_outcome_in_arrival_order(fresh_gate):
    groups = []

    def apply(product_id, gathering):
        started.set()
        go.wait(30)
        group = gathering.take()
        groups.append([buyer.user_id for buyer in group])
        for buyer in group:
            buyer.answer(f"order for {buyer.user_id}")

    _buyers, answers = _line_up(-1, 5, apply)
    assert groups == [[0, 1, 2, 3, 4]]
    assert answers == [f"order for {n}" for n in range(5)]
    assert group_commit.group_sizes() == {5: 1}


def test_buyers_the_leader_does_not_admit_stay_in_line_for_the_next_group_in_order(fresh_gate):
    seen, groups = [], []

    def apply(product_id, gathering):
        started.set()
        go.wait(30)
        seen.append([buyer.user_id for buyer in gathering.lined_up()])
        group = gathering.take(admit=lambda buyer: buyer.user_id != 3)
        groups.append([buyer.user_id for buyer in group])
        for buyer in group:
            buyer.answer(buyer.user_id)

    _buyers, answers = _line_up(-4, 6, apply)
    assert seen == [[0, 1, 2, 3, 4, 5], [3, 4, 5]]  # looked at, not taken
    assert groups == [[0, 1, 2], [3, 4, 5]]  # 4 waits behind 3: arrival order is kept
    assert answers == list(range(6))
    assert group_commit.group_sizes() == {3: 2}


def _answer_the_prepared(groups, ready):
    def apply(product_id, gathering):
        gathering.lined_up()  # as a leader does before it waits for the lock: who queues now prepares
        started.set()
        go.wait(30)
        group = gathering.take(admit=lambda buyer: buyer.user_id in ready)
        groups.append([buyer.user_id for buyer in group])
        for buyer in group:
            buyer.answer(buyer.user_id)
    return apply


def test_queued_buyers_prepare_each_other_in_batches_while_the_leader_works(fresh_gate):
    """One queued buyer at a time runs `prepare` over everyone queued, again for those who
    arrived during its pass; the leader then takes all of them prepared."""
    ready, passes, groups, first_pass = set(), [], [], threading.Event()

    def prepare(queued):
        todo = [buyer.user_id for buyer in queued if buyer.user_id not in ready]
        if not todo:
            return False
        if not passes:
            first_pass.wait(30)  # the others queue meanwhile, and must not start passes of their own
        passes.append(todo)
        ready.update(todo)
        return True

    def everyone_prepared():
        first_pass.set()
        wait_until(lambda: not group_commit.preparing(-5), what="the preparer to finish")

    _buyers, answers = _line_up(-5, 5, _answer_the_prepared(groups, ready), prepare, everyone_prepared)
    # The first queued buyer prepares; its first pass lasts until all have queued, so one more
    # pass takes the rest together. Each buyer once; the leader (0) prepares itself.
    assert len(passes) == 2 and passes[0][0] == 1 and sorted(passes[0] + passes[1]) == [1, 2, 3, 4]
    assert groups == [[0, 1, 2, 3, 4]]
    assert answers == list(range(5))


def test_a_preparer_stops_preparing_once_it_is_answered(fresh_gate):
    """Its own answer never waits on passes for later groups, however much work they find."""
    buyers = [Buyer(user_id=n, quantity=1) for n in range(3)]
    returned = {}
    first_taken, second_looked = threading.Event(), threading.Event()

    def prepare(queued):
        if first_taken.is_set():
            second_looked.wait(30)  # this pass ends inside the next leader's lock wait
        time.sleep(0.001)  # a count's round trip; there is always more to do
        return True

    def apply(product_id, gathering):
        gathering.lined_up()
        if gathering.leader.user_id == 0:
            started.set()
            go.wait(30)
            group = gathering.take(admit=lambda buyer: buyer.user_id == 1)
            first_taken.set()
        else:  # the next leader waits for its lock until the preparer has its answer back
            second_looked.set()
            wait_until(lambda: 1 in returned, what="the preparer to return its answer")
            group = gathering.take()
        for buyer in group:
            buyer.answer(buyer.user_id)

    def run(index):
        returned[index] = group_commit.buy_in_group(-8, buyers[index], apply, prepare)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    threads[0].start()
    wait_until(started.is_set, what="the leader")
    for index in (1, 2):
        threads[index].start()
        wait_until(lambda index=index: group_commit.queued_buyers(-8) == index, what="a buyer to queue")
    go.set()
    for thread in threads:
        thread.join(timeout=30)
    assert returned == {0: 0, 1: 1, 2: 2}
    assert not group_commit.preparing(-8)


def test_a_preparer_that_fails_still_gets_its_answer_from_a_group(fresh_gate, caplog):
    groups, ready = [], {1, 2}

    def prepare(queued):
        raise RuntimeError("boom")

    _buyers, answers = _line_up(-6, 3, _answer_the_prepared(groups, ready), prepare)
    assert answers == [0, 1, 2] and groups == [[0, 1, 2]]
    assert "preparing queued buyers failed" in caplog.text
    assert not group_commit.preparing(-6)


def test_who_queues_after_the_group_is_taken_is_left_to_the_next_leader(fresh_gate):
    """Preparing pays off only while the leader waits for the lock: later arrivals are
    prepared by the next leader, all at once, so nobody runs `prepare` for them meanwhile."""
    calls, groups = [], []

    def prepare(queued):
        calls.append([buyer.user_id for buyer in queued])
        return False

    def apply(product_id, gathering):
        gathering.lined_up()
        group = gathering.take()  # the lock came: the others queue while the group is applied
        started.set()
        go.wait(30)
        groups.append([buyer.user_id for buyer in group])
        for buyer in group:
            buyer.answer(buyer.user_id)

    _buyers, answers = _line_up(-7, 3, apply, prepare)
    assert calls == [] and answers == [0, 1, 2]
    assert groups == [[0], [1, 2]]


def test_a_failure_before_the_group_is_taken_reaches_everyone_lined_up(fresh_gate):
    def apply(product_id, gathering):
        started.set()
        go.wait(30)
        raise Busy()

    _buyers, answers = _line_up(-2, 4, apply)
    assert all(isinstance(answer, Busy) for answer in answers)
    assert len({id(answer) for answer in answers}) == 4  # each thread raises its own object


class LeaderStopped(BaseException):
    """Like gevent's GreenletExit: stops one greenlet, is not an error."""


def test_a_stopped_leader_still_wakes_its_group_with_an_error(fresh_gate):
    def apply(product_id, gathering):
        started.set()
        go.wait(30)
        gathering.take()
        raise LeaderStopped()

    _buyers, answers = _line_up(-3, 3, apply)
    assert isinstance(answers[0], LeaderStopped)  # the leader's own thread is stopped
    assert all(type(answer) is RuntimeError for answer in answers[1:])  # the others get an error
    assert group_commit.queued_buyers(-3) == 0


# Groups against the one-by-one model, on real PostgreSQL.

SHOPPERS = 3
buyer = st.tuples(st.integers(0, SHOPPERS - 1), st.integers(1, 4), st.one_of(st.none(), st.sampled_from("ab")))
groups = st.lists(st.lists(buyer, min_size=1, max_size=6), min_size=1, max_size=5)


def _one_by_one(model, product_id, who, quantity, key, claimed_in_group):
    """What one purchase gets, one at a time; a key's twin earlier in its own group is in flight."""
    request_hash = _hash(product_id, quantity)
    if key is not None:
        if (who, key) in claimed_in_group:
            return IdempotencyKeyInUse, None
        claimed_in_group.add((who, key))
        if (who, key) in model["keys"]:
            earlier_hash, order_index = model["keys"][(who, key)]
            return (IdempotencyKeyReused, None) if earlier_hash != request_hash else ("replay", order_index)
    limit, stock, held = model["max_per_user"], model["stock"], model["held"][who]
    if limit is not None and held + quantity > limit:
        return PurchaseLimitReached, None
    if stock <= 0:
        return SoldOut, None
    if stock < quantity:
        return InsufficientStock, None
    model["stock"] -= quantity
    model["held"][who] += quantity
    model["orders"] += 1
    if key is not None:
        model["keys"][(who, key)] = (request_hash, model["orders"])
    return "sold", model["stock"]


def _hash(product_id, quantity):
    import hashlib

    return hashlib.sha256(f"{product_id}:{quantity}".encode()).hexdigest()


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(stock=st.integers(0, 10), max_per_user=st.one_of(st.none(), st.integers(1, 5)), groups=groups)
def test_groups_answer_exactly_as_one_by_one_purchases(stock, max_per_user, groups):
    stamp = timezone.now().strftime("%H%M%S%f")
    users = [get_user_model().objects.create_user(f"group-{stamp}-{i}") for i in range(SHOPPERS)]
    product = create_product(name=f"Group {stamp}", price=Decimal("2.00"), stock=stock, max_per_user=max_per_user,
                             sale_starts_at=timezone.now() - timedelta(hours=1), sale_ends_at=None)
    model = {"stock": stock, "max_per_user": max_per_user, "held": [0] * SHOPPERS, "keys": {}, "orders": 0}
    made = {}  # the model's order number -> the order the database made

    for group in groups:
        buyers = [Buyer(user_id=users[who].pk, quantity=quantity, key=key, request_hash=_hash(product.pk, quantity))
                  for who, quantity, key in group]
        _buy_group(product.pk, Gathering.of(buyers))
        claimed = set()
        for (who, quantity, key), applied in zip(group, buyers, strict=True):
            expected, detail = _one_by_one(model, product.pk, who, quantity, key, claimed)
            assert applied.answered
            if isinstance(expected, type):
                assert type(applied.error) is expected, (applied.error, expected)
                continue
            assert applied.error is None, applied.error
            if expected == "replay":
                assert not applied.result.created and applied.result.order.pk == made[detail].pk
                continue
            assert applied.result.created and applied.result.order.remaining_stock == detail
            made[model["orders"]] = applied.result.order

        product.refresh_from_db()
        assert product.stock == model["stock"]
        assert_stock_reconciles(product.pk)
        for index, user in enumerate(users):
            live = Order.objects.filter(product=product, user=user, status=OrderStatus.CONFIRMED)
            assert (live.aggregate(units=Sum("quantity"))["units"] or 0) == model["held"][index]
    assert Order.objects.filter(product=product).count() == model["orders"]


# Real threads lining up behind a held row lock.


def _buy_as_group(product_id, calls, *, lock_released=True):
    """Fire `calls` (user, quantity, key) at once while another session holds the product's
    row lock: the first buyer leads and waits on the lock, the others line up behind it.
    Once all are lined up the lock is let go (unless told not to) and every answer returned."""
    group_commit.reset_group_sizes()

    def buy(user, quantity, key):
        return purchase(user=user, product_id=product_id, quantity=quantity, idempotency_key=key)

    with row_locked_elsewhere(product_id) as held:
        join = start_at_once(buy, calls)
        if not lock_released:
            return join()
        wait_until(lambda: group_commit.queued_buyers(product_id) == len(calls) - 1, what="the buyers to line up")
        held.release()
        return join()


def _sold(results):
    return [r for r in results if not isinstance(r, Exception)]


@pytest.mark.django_db(transaction=True)
def test_a_group_sells_exactly_the_stock(make_product, make_user):
    product = make_product(stock=8)
    results = _buy_as_group(product.pk, [(make_user(), 1, None) for _ in range(12)])
    assert group_commit.group_sizes() == {12: 1}
    sold = _sold(results)
    assert sorted(r.order.remaining_stock for r in sold) == list(range(8))
    assert all(r.created for r in sold)
    assert [type(r) for r in results if isinstance(r, Exception)] == [SoldOut] * 4
    assert {r.order.pk for r in sold} == set(Order.objects.values_list("pk", flat=True))
    product.refresh_from_db()
    assert product.stock == 0
    assert_stock_reconciles(product.pk)


@pytest.mark.django_db(transaction=True)
def test_a_group_of_multi_unit_buyers_stops_at_insufficient_stock(make_product, make_user):
    product = make_product(stock=7)
    results = _buy_as_group(product.pk, [(make_user(), 3, None) for _ in range(5)])
    assert group_commit.group_sizes() == {5: 1}
    assert sorted(r.order.remaining_stock for r in _sold(results)) == [1, 4]
    assert [type(r) for r in results if isinstance(r, Exception)] == [InsufficientStock] * 3
    product.refresh_from_db()
    assert product.stock == 1
    assert_stock_reconciles(product.pk)


@pytest.mark.django_db(transaction=True)
def test_one_shopper_many_times_in_one_group_gets_exactly_the_limit(make_product, shopper, make_user):
    product = make_product(stock=100, max_per_user=2)
    others = [(make_user(), 2, None) for _ in range(3)]
    results = _buy_as_group(product.pk, [(shopper, 1, None)] * 10 + others)
    assert group_commit.group_sizes() == {13: 1}
    assert len(_sold(results)) == 2 + 3
    assert [type(r) for r in results if isinstance(r, Exception)] == [PurchaseLimitReached] * 8
    held = Order.objects.filter(user=shopper, status="confirmed").aggregate(u=Sum("quantity"))["u"]
    assert held == 2
    assert_stock_reconciles(product.pk)


@pytest.mark.django_db(transaction=True)
def test_one_key_many_times_in_one_group_makes_one_order(make_product, shopper, make_user):
    product = make_product(stock=50)
    others = [(make_user(), 1, f"other-{i}") for i in range(4)]
    results = _buy_as_group(product.pk, [(shopper, 2, "same-key")] * 8 + others)
    assert group_commit.group_sizes() == {12: 1}
    mine = results[:8]
    assert len({r.order.pk for r in _sold(mine)}) == 1
    assert all(isinstance(r, IdempotencyKeyInUse) for r in mine if isinstance(r, Exception))
    assert len(_sold(results[8:])) == 4
    assert Order.objects.filter(user=shopper).count() == 1
    product.refresh_from_db()
    assert product.stock == 50 - 2 - 4
    # And a retry after the group replays the one order.
    again = purchase(user=shopper, product_id=product.pk, quantity=2, idempotency_key="same-key")
    assert not again.created and again.order.pk == _sold(mine)[0].order.pk


@pytest.mark.django_db(transaction=True)
def test_a_lock_timeout_mid_group_answers_every_buyer_busy(make_product, make_user, settings):
    settings.LOCK_TIMEOUT_MS = 1500
    product = make_product(stock=10)
    results = _buy_as_group(product.pk, [(make_user(), 1, None) for _ in range(6)], lock_released=False)
    assert all(isinstance(r, Busy) for r in results), results
    assert max(group_commit.group_sizes()) > 1
    product.refresh_from_db()
    assert product.stock == 10 and not Order.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_database_error_mid_group_answers_every_buyer_and_commits_nothing(make_product, make_user):
    product = make_product(stock=20)
    with orders_insert_fails(quantity=7, sqlstate="53100"):  # disk_full: an OperationalError
        results = _buy_as_group(product.pk, [(make_user(), 7, None)] + [(make_user(), 1, None) for _ in range(5)])
    assert group_commit.group_sizes() == {6: 1}
    assert all(isinstance(r, DATABASE_DOWN) for r in results), results  # 503 unavailable
    product.refresh_from_db()
    assert product.stock == 20 and not Order.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_one_failing_insert_costs_no_one_else_their_order(make_product, make_user):
    """An IntegrityError rolls the group back; then each is applied alone and told its own outcome."""
    product = make_product(stock=20)
    with orders_insert_fails(quantity=7, sqlstate="23505"):  # unique_violation: an IntegrityError
        results = _buy_as_group(product.pk, [(make_user(), 7, None)] + [(make_user(), 1, None) for _ in range(5)])
    assert group_commit.group_sizes() == {6: 1}  # the one-by-one retries run inside it
    failed, *others = results
    assert not isinstance(failed, DomainError) and isinstance(failed, Exception)
    assert all(not isinstance(r, Exception) for r in others), others
    assert {r.order.pk for r in others} == set(Order.objects.values_list("pk", flat=True))
    product.refresh_from_db()
    assert product.stock == 15
    assert_stock_reconciles(product.pk)


@pytest.mark.django_db(transaction=True)
def test_a_lone_buyer_is_a_group_of_one(make_product, shopper):
    product = make_product(stock=3)
    group_commit.reset_group_sizes()
    purchase(user=shopper, product_id=product.pk)
    assert group_commit.group_sizes() == {1: 1}
    assert group_commit.queued_buyers(product.pk) == 0


# Rate limits counted by the group: one Redis round trip for all its buyers.


def _limits_of(user, address="10.7.7.7"):
    from django.test import RequestFactory

    from flashsale.ratelimits import purchase_limits

    request = RequestFactory().post("/api/orders/", REMOTE_ADDR=address)
    request.user = user
    return purchase_limits(request)


def _buy_as_group_with_limits(product_id, users, *, lock_released=True):
    """As `_buy_as_group`, each purchase handing its limits uncounted to the service.

    The first buyer goes alone and leads: it counts its own limits (nobody else is lined up
    yet), then waits on the row lock another session holds; the others line up meanwhile
    and count each other's limits, so that once the lock is let go they are in its group.
    The product is read once first and noted on sale for the whole test (`long_notes`), as
    a sale's first buyer leaves it: a buyer whose pre-check would read the database counts
    its limits on its own first, so that a refused flood never reaches the database.
    """
    from orders.services import _reject_early

    group_commit.reset_group_sizes()
    _reject_early(user_id=0, product_id=product_id, quantity=1)

    def buy(user):
        return purchase(user=user, product_id=product_id, limits=_limits_of(user))

    with row_locked_elsewhere(product_id) as held:
        join_leader = start_at_once(buy, [(users[0],)])
        wait_until(lambda: _lock_waiters() == 1, what="the leader to wait on the row lock")
        join = start_at_once(buy, [(user,) for user in users[1:]])
        wait_until(lambda: group_commit.queued_buyers(product_id) == len(users) - 1, what="the buyers to line up")
        wait_until(lambda: not group_commit.preparing(product_id), what="their limits to be counted")
        if lock_released:
            held.release()
        return join_leader() + join()


def _lock_waiters():
    from tests.concurrency import other_session

    with other_session() as other:
        return other.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                             "AND wait_event_type = 'Lock'").fetchone()[0]


def _counted(user, rate, address="10.7.7.7"):
    from django.test import RequestFactory
    from django_ratelimit.core import get_usage

    from flashsale.ratelimits import _by_user

    request = RequestFactory().post("/api/orders/", REMOTE_ADDR=address)
    request.user = user
    return get_usage(request, group="purchase-user", key=_by_user, rate=rate, increment=False)["count"]


@pytest.fixture
def long_notes(monkeypatch):
    """On-sale notes that outlive a slow machine's lining up (MARK_SECONDS is 0.5 s)."""
    from products import sold_out

    monkeypatch.setattr(sold_out, "MARK_SECONDS", 60.0)


@pytest.mark.django_db(transaction=True)
def test_a_groups_limits_are_counted_before_it_forms_each_buyer_once(make_product, shopper, make_user, settings,
                                                            redis_writes, long_notes):
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "2/m", "1000/m"
    product = make_product(stock=100)
    _limits_of(make_user()).count()  # the server learns the script
    redis_writes.clear()
    others = [make_user() for _ in range(5)]
    results = _buy_as_group_with_limits(product.pk, [make_user()] + [shopper] * 4 + others)
    assert group_commit.group_sizes() == {10: 1}
    # The leader's own count, then the queued buyers' batches (how many depends on how they
    # arrived); nothing else touches Redis here.
    assert 2 <= len(redis_writes) <= 10
    kinds = [type(r) if isinstance(r, Exception) else "sold" for r in results]
    assert kinds.count(RateLimited) == 2 and kinds.count("sold") == 8, kinds
    assert kinds[0] == "sold" and all(kind == "sold" for kind in kinds[5:])
    assert Order.objects.filter(user=shopper).count() == 2
    assert _counted(shopper, "2/m") == 4 and all(_counted(user, "2/m") == 1 for user in others)
    product.refresh_from_db()
    assert product.stock == 92
    assert_stock_reconciles(product.pk)


@pytest.mark.django_db(transaction=True)
def test_no_limit_is_counted_under_the_row_lock(make_product, shopper, make_user, settings, monkeypatch,
                                                long_notes):
    """A slow Redis must delay only the buyers it counts, never the row every buyer of the
    product (in every process) queues on: each count goes out before the lock is taken, the
    leader's for those lined up, the queued buyers' for those who line up during its wait."""
    from redis.connection import AbstractConnection

    from flashsale import ratelimits

    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "100/m", "1000/m"
    product = make_product(stock=100)
    inside_a_transaction = []
    real_send = AbstractConnection.send_packed_command

    def recording_send(self, command, *args, **kwargs):
        inside_a_transaction.append(connection.in_atomic_block)
        return real_send(self, command, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", recording_send)
    ratelimits.count_limits([_limits_of(make_user())])  # the server learns the script
    inside_a_transaction.clear()
    results = _buy_as_group_with_limits(product.pk, [shopper, *(make_user() for _ in range(6))])
    assert all(not isinstance(r, Exception) for r in results), results
    assert len(inside_a_transaction) >= 2 and not any(inside_a_transaction)
    assert group_commit.group_sizes() == {7: 1}  # yet those who queued during the lock wait are in


@pytest.mark.django_db(transaction=True)
def test_a_leader_whose_count_is_still_out_waits_for_its_answer_before_buying(make_product, shopper, monkeypatch):
    """Handed the lead while a queued buyer's count of its limits is in flight, a buyer is
    decided only once that answer is in: a limit it passed is its answer, not a sale."""
    from flashsale import ratelimits

    product = make_product(stock=5)
    limits = _limits_of(shopper)
    limits.counted = True  # claimed by another buyer's count, whose answer is not in yet
    leader = Buyer(user_id=shopper.pk, quantity=1, limits=limits)
    waiting, real_wait = threading.Event(), ratelimits._wait_for_count

    def wait(settling):
        waiting.set()
        real_wait(settling)

    monkeypatch.setattr(ratelimits, "_wait_for_count", wait)
    buying = threading.Thread(target=_buy_group, args=(product.pk, Gathering.of([leader])))
    buying.start()
    wait_until(lambda: waiting.is_set() or leader.answered, what="the leader to wait or to decide")
    limits.refusal = RateLimited("over", retry_after=1)  # the other buyer's count answers...
    ratelimits._settle([limits])  # ...and settles it, as count_limits does
    buying.join(timeout=30)
    assert isinstance(leader.error, RateLimited), (leader.error, leader.result)
    assert not Order.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_rate_limited_buyer_gets_429_when_its_group_times_out_and_each_is_counted_once(
        make_product, shopper, make_user, settings, long_notes):
    """As when every purchase counted its limits before queuing: the limited one is 429, the rest 503."""
    settings.LOCK_TIMEOUT_MS = 1500
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "1/m", None
    product = make_product(stock=10)
    _limits_of(shopper).count()  # the shopper's one purchase this minute
    others = [make_user() for _ in range(3)]
    results = _buy_as_group_with_limits(product.pk, [others[0], shopper, *others[1:]], lock_released=False)
    assert isinstance(results[1], RateLimited)
    assert [type(r) for i, r in enumerate(results) if i != 1] == [Busy] * 3
    assert _counted(shopper, "1/m") == 2 and all(_counted(user, "1/m") == 1 for user in others)
    product.refresh_from_db()
    assert product.stock == 10 and not Order.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_redis_down_a_group_sells_without_limits(make_product, shopper, make_user, settings, caplog, long_notes):
    from flashsale.settings.base import redis_cache

    settings.CACHES = {"default": redis_cache("redis://127.0.0.1:1/0")}  # nothing listens there
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "1/m", "1/m"
    product = make_product(stock=10)
    results = _buy_as_group_with_limits(product.pk, [shopper, *(make_user() for _ in range(3))])
    assert all(not isinstance(r, Exception) for r in results), results
    assert group_commit.group_sizes() == {4: 1}
    assert caplog.text.count("rate limits skipped") >= 1  # a line per count tried
    product.refresh_from_db()
    assert product.stock == 6
    assert_stock_reconciles(product.pk)


@pytest.mark.django_db
def test_a_purchase_refused_before_any_group_counts_its_limits_first(make_product, shopper, settings):
    """Refused by the pre-check (no such product, not started yet, sold out): the limits are
    counted first, once, and a passed limit is the answer, as the contract's order puts it."""
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "2/m", None
    upcoming = make_product(stock=5, starts_in=timedelta(hours=1))
    with pytest.raises(SaleNotStarted):
        purchase(user=shopper, product_id=upcoming.pk, limits=_limits_of(shopper))
    with pytest.raises(InvalidInput):
        purchase(user=shopper, product_id=upcoming.pk, quantity=0, limits=_limits_of(shopper))
    assert _counted(shopper, "2/m") == 2
    for product_id, quantity in ((upcoming.pk, 1), (upcoming.pk + 1000, 1), (upcoming.pk, 0)):
        with pytest.raises(RateLimited):
            purchase(user=shopper, product_id=product_id, quantity=quantity, limits=_limits_of(shopper))
    assert _counted(shopper, "2/m") == 5


@pytest.mark.django_db
def test_an_idempotency_key_purchase_counts_its_limits_before_its_replay(make_product, shopper, settings):
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "1/m", None
    product = make_product(stock=5)
    first = purchase(user=shopper, product_id=product.pk, idempotency_key="k-1", limits=_limits_of(shopper))
    with pytest.raises(RateLimited):  # a retry is a request too: limited before the replay
        purchase(user=shopper, product_id=product.pk, idempotency_key="k-1", limits=_limits_of(shopper))
    assert first.created and Order.objects.count() == 1 and _counted(shopper, "1/m") == 2


@pytest.mark.django_db
def test_a_refused_purchase_never_reaches_the_database(make_product, shopper, settings,
                                                        django_assert_num_queries):
    """Limits counted later must not let a refused flood cost the database a read each: the
    pre-check counts them before reading a product it does not hold in memory."""
    settings.RATE_LIMIT_PURCHASE_USER, settings.RATE_LIMIT_PURCHASE_IP = "1/m", None
    product = make_product(stock=5)  # new to this process: no sold-out mark, no on-sale note
    _limits_of(shopper).count()
    for product_id in (product.pk, product.pk + 1000):  # a product, and no product at all
        with django_assert_num_queries(0), pytest.raises(RateLimited):
            purchase(user=shopper, product_id=product_id, limits=_limits_of(shopper))
    assert _counted(shopper, "1/m") == 3
