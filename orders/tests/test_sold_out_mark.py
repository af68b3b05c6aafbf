"""The sold-out mark: a loser on a product known to be sold out costs no database round trip.

Set by the sale of the last unit (on commit), cleared by restock, cancel and an edit; it
only ever refuses (a missing mark means "ask the database") and keeps the contract's
check order: the window before the stock, and never on a product with a per-shopper limit.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.errors import PurchaseLimitReached
from orders.selectors import SNAPSHOT_PRODUCT_FIELDS, purchase_snapshot
from orders.services import cancel_order, purchase
from products import lock_objects, sold_out
from products.errors import SaleEnded, SaleNotStarted, SoldOut
from products.services import restock, update_product
from tests.faults import buy, token_for
from tests.invariants import assert_stock_reconciles
from tests.servers import running_app, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _refused_without_a_query(user, product_id, error=SoldOut):
    with CaptureQueriesContext(connection) as queries, pytest.raises(error):
        purchase(user=user, product_id=product_id)
    assert queries.captured_queries == []


def test_the_last_sale_marks_the_product_and_losers_cost_no_query(make_product, make_user):
    product = make_product(stock=2)
    purchase(user=make_user(), product_id=product.pk)
    assert sold_out.sold_out_facts(product.pk) is None  # one left: nothing to remember
    purchase(user=make_user(), product_id=product.pk)
    facts = sold_out.sold_out_facts(product.pk)
    assert facts == {**purchase_snapshot(product_id=product.pk, user_id=0), "units_held": 0}
    _refused_without_a_query(make_user(), product.pk)


def test_a_pre_check_that_reads_stock_0_marks_it_too(make_product, make_user):
    """How the workers that did not sell the last unit learn it."""
    product = make_product(stock=0)
    with pytest.raises(SoldOut):
        purchase(user=make_user(), product_id=product.pk)
    _refused_without_a_query(make_user(), product.pk)


def test_restock_clears_the_mark(make_product, make_user):
    product = make_product(stock=1)
    purchase(user=make_user(), product_id=product.pk)
    restock(product=product, quantity=2)
    assert sold_out.sold_out_facts(product.pk) is None
    assert purchase(user=make_user(), product_id=product.pk).order.remaining_stock == 1


def test_cancel_clears_the_mark(make_product, make_user):
    product = make_product(stock=1)
    order = purchase(user=make_user(), product_id=product.pk).order
    cancel_order(order=order)
    assert sold_out.sold_out_facts(product.pk) is None
    assert purchase(user=make_user(), product_id=product.pk).created
    assert_stock_reconciles(product.pk)


def test_an_edit_clears_the_mark_so_the_new_window_is_answered(make_product, make_user):
    product = make_product(stock=1)
    purchase(user=make_user(), product_id=product.pk)
    update_product(product=product, sale_ends_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(SaleEnded):
        purchase(user=make_user(), product_id=product.pk)


def test_the_mark_keeps_the_window_before_the_stock(make_product, make_user):
    product = make_product(stock=0)
    facts = purchase_snapshot(product_id=product.pk, user_id=0)
    ended = {**facts, "sale_ends_at": timezone.now() - timedelta(seconds=1)}
    sold_out.mark_sold_out(product.pk, ended, seen_generation=sold_out.generation())
    _refused_without_a_query(make_user(), product.pk, SaleEnded)
    upcoming = {**facts, "sale_starts_at": timezone.now() + timedelta(minutes=5)}
    sold_out.mark_sold_out(product.pk, upcoming, seen_generation=sold_out.generation())
    _refused_without_a_query(make_user(), product.pk, SaleNotStarted)


def test_a_product_with_a_limit_is_never_marked(make_product, shopper):
    product = make_product(stock=1, max_per_user=1)
    purchase(user=shopper, product_id=product.pk)
    assert sold_out.sold_out_facts(product.pk) is None
    with pytest.raises(PurchaseLimitReached):  # this shopper's answer needs what they hold
        purchase(user=shopper, product_id=product.pk)
    assert sold_out.sold_out_facts(product.pk) is None


def test_the_mark_never_says_available(make_product, make_user):
    product = make_product(stock=3)
    facts = purchase_snapshot(product_id=product.pk, user_id=0)
    sold_out.mark_sold_out(product.pk, facts, seen_generation=sold_out.generation())
    assert sold_out.sold_out_facts(product.pk) is None  # facts with stock left are not remembered
    sold_out_product = make_product(stock=0)
    sold_out.clear_sold_out(sold_out_product.pk)
    with pytest.raises(SoldOut):  # no mark: the database answers, and it says sold out
        purchase(user=make_user(), product_id=sold_out_product.pk)


def test_a_stale_mark_only_refuses_until_it_is_cleared(make_product, make_user):
    """Another process's view after a restock it did not see: refusals, never a sale without the lock."""
    product = make_product(stock=1)
    purchase(user=make_user(), product_id=product.pk)
    facts = sold_out.sold_out_facts(product.pk)
    restock(product=product, quantity=1)
    sold_out.mark_sold_out(product.pk, facts, seen_generation=sold_out.generation())  # as if not told
    _refused_without_a_query(make_user(), product.pk)
    sold_out.clear_sold_out(product.pk)
    assert purchase(user=make_user(), product_id=product.pk).order.remaining_stock == 0


def test_a_clear_wins_over_a_mark_read_before_it(make_product):
    product = make_product(stock=0)
    seen = sold_out.generation()
    facts = purchase_snapshot(product_id=product.pk, user_id=0)
    sold_out.clear_sold_out(product.pk)  # a restock committed after that read
    sold_out.mark_sold_out(product.pk, facts, seen_generation=seen)
    assert sold_out.sold_out_facts(product.pk) is None


def test_the_locked_row_carries_every_fact_the_mark_remembers(make_product):
    """The mark is built from the row the purchase locked: a fact it lacks would be a query under the lock."""
    from django.db import transaction

    product = make_product()
    with transaction.atomic():
        locked = lock_objects.product_for_purchase(product.pk)
    assert not set(SNAPSHOT_PRODUCT_FIELDS) & locked.get_deferred_fields()


@pytest.mark.slow
def test_other_processes_learn_of_a_restock_within_the_marks_life(make_product, make_user):
    """Two workers (separate processes) both mark the product; a restock made by a third
    process clears neither, and yet a buyer gets through once the marks have expired."""
    product = make_product(stock=1)
    tokens = [token_for(make_user()) for _ in range(8)]
    with running_app(workers=2) as base:
        answers = [buy(base, token, product.pk)[:2] for token in tokens[:6]]
        assert sorted(answers) == [(201, None)] + [(409, "sold_out")] * 5
        restock(product=product, quantity=1)
        latecomer = tokens[6]
        wait_until(lambda: buy(base, latecomer, product.pk)[0] == 201, what="a worker to see the restock")
        assert buy(base, tokens[7], product.pk)[:2] == (409, "sold_out")
    product.refresh_from_db()
    assert product.stock == 0
    assert_stock_reconciles(product.pk)


# The on-sale note: a product read on sale lets the next buyers skip the unlocked read.


def _snapshot_reads(queries) -> int:
    return sum("CASE WHEN p.max_per_user IS NULL" in query["sql"] for query in queries.captured_queries)


def test_a_product_read_on_sale_spares_the_next_buyers_the_read(make_product, make_user):
    product = make_product(stock=5)
    with CaptureQueriesContext(connection) as first:
        purchase(user=make_user(), product_id=product.pk)
    with CaptureQueriesContext(connection) as second:
        assert purchase(user=make_user(), product_id=product.pk).order.remaining_stock == 3
    assert (_snapshot_reads(first), _snapshot_reads(second)) == (1, 0)
    assert sold_out.on_sale_facts(product.pk)["stock"] == 5  # the read's figure; the lock decides


def test_a_note_never_sells_what_is_gone(make_product, make_user):
    """Another process sold the last unit: the note's buyers are refused under the lock, nothing oversold."""
    product = make_product(stock=1)
    purchase(user=make_user(), product_id=product.pk)
    facts = {**purchase_snapshot(product_id=product.pk, user_id=0), "stock": 1}
    sold_out.clear_sold_out(product.pk)
    sold_out.remember(product.pk, facts, seen_generation=sold_out.generation())  # as if it had not heard
    with pytest.raises(SoldOut):
        purchase(user=make_user(), product_id=product.pk)
    assert_stock_reconciles(product.pk)


def test_a_note_keeps_the_window_without_a_query(make_product, make_user):
    product = make_product(stock=5, starts_in=timedelta(minutes=5))
    with pytest.raises(SaleNotStarted):
        purchase(user=make_user(), product_id=product.pk)  # the read leaves a note
    assert sold_out.on_sale_facts(product.pk) is not None
    _refused_without_a_query(make_user(), product.pk, SaleNotStarted)


def test_a_note_never_hides_a_mark_set_since(make_product):
    product = make_product(stock=0)
    seen = sold_out.generation()
    facts = {**purchase_snapshot(product_id=product.pk, user_id=0), "stock": 1}  # read before the last sale
    sold_out.mark_sold_out(product.pk, {**facts, "stock": 0}, seen_generation=seen)
    sold_out.remember(product.pk, facts, seen_generation=seen)
    assert sold_out.sold_out_facts(product.pk) is not None and sold_out.on_sale_facts(product.pk) is None


def test_a_product_with_a_limit_gets_no_note(make_product, make_user):
    product = make_product(stock=5, max_per_user=2)
    purchase(user=make_user(), product_id=product.pk)
    assert sold_out.on_sale_facts(product.pk) is None


def test_a_waiting_room_switched_on_behind_a_note_is_checked_under_the_lock(make_product, make_user):
    from products.models import Product
    from waiting_room import passes
    from waiting_room.errors import AdmissionRequired

    product = make_product(stock=5)
    purchase(user=make_user(), product_id=product.pk)  # leaves a note: no waiting room
    Product.objects.filter(pk=product.pk).update(waiting_room=True)  # an edit another process made
    with pytest.raises(AdmissionRequired):
        purchase(user=make_user(), product_id=product.pk)
    admitted = make_user()
    pass_ = passes.issue_pass(shopper_id=admitted.pk, product_id=product.pk,
                              expires_ms=passes.to_ms(timezone.now()) + 60_000)
    assert purchase(user=admitted, product_id=product.pk, admission_pass=pass_).order.remaining_stock == 3


# Renewal: one caller renews an entry about to end; the others keep using it meanwhile.


def _expiry(product_id: int) -> float:
    return sold_out._marks[product_id][0]


def test_one_buyer_renews_an_entry_about_to_end_while_the_others_use_it(make_product, make_user, monkeypatch):
    product = make_product(stock=0)
    with pytest.raises(SoldOut):
        purchase(user=make_user(), product_id=product.pk)  # the read marks it
    monkeypatch.setattr(sold_out, "REFRESH_AHEAD_SECONDS", sold_out.MARK_SECONDS)  # every entry is about to end
    assert sold_out.claim_refresh(product.pk)  # a renewer is in flight...
    _refused_without_a_query(make_user(), product.pk)  # ...so this buyer uses the entry, still in its life
    sold_out.release_refresh(product.pk)
    before = _expiry(product.pk)
    with CaptureQueriesContext(connection) as renewal, pytest.raises(SoldOut):
        purchase(user=make_user(), product_id=product.pk)  # this one renews it
    assert _snapshot_reads(renewal) == 1
    assert _expiry(product.pk) > before
    assert not sold_out._refreshing


def test_a_renewal_sees_a_restock_made_elsewhere(make_product, make_user, monkeypatch):
    """The renewer reads the row: units put back by another process are sold to it at once."""
    product = make_product(stock=0)
    with pytest.raises(SoldOut):
        purchase(user=make_user(), product_id=product.pk)
    from django.db.models import F

    type(product).objects.filter(pk=product.pk).update(  # another process's restock, unheard here
        stock=F("stock") + 3, units_received=F("units_received") + 3)
    monkeypatch.setattr(sold_out, "REFRESH_AHEAD_SECONDS", sold_out.MARK_SECONDS)
    assert purchase(user=make_user(), product_id=product.pk).order.remaining_stock == 2
    assert_stock_reconciles(product.pk)


def test_a_failed_renewal_lets_the_next_buyer_renew(make_product, make_user, monkeypatch):
    from django.db import OperationalError

    from orders import services

    product = make_product(stock=0)
    with pytest.raises(SoldOut):
        purchase(user=make_user(), product_id=product.pk)
    monkeypatch.setattr(sold_out, "REFRESH_AHEAD_SECONDS", sold_out.MARK_SECONDS)

    def database_gone(**kwargs):
        raise OperationalError("the server closed the connection")

    with monkeypatch.context() as patch:
        patch.setattr(services, "purchase_snapshot", database_gone)
        with pytest.raises(OperationalError):
            purchase(user=make_user(), product_id=product.pk)
    assert not sold_out._refreshing
    assert sold_out.claim_refresh(product.pk)
    sold_out.release_refresh(product.pk)


def test_only_one_of_many_threads_claims_a_renewal(make_product, make_user, monkeypatch):
    import threading

    product = make_product(stock=0)
    with pytest.raises(SoldOut):
        purchase(user=make_user(), product_id=product.pk)
    monkeypatch.setattr(sold_out, "REFRESH_AHEAD_SECONDS", sold_out.MARK_SECONDS)
    start, claims = threading.Barrier(8), []

    def claim():
        start.wait()
        claims.append(sold_out.claim_refresh(product.pk))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claims) == [False] * 7 + [True]
    sold_out.release_refresh(product.pk)


# A crowd's first buyers share one read.


def _slow_counted_snapshot(monkeypatch, seconds: float):
    """The real snapshot read, counted, and held open `seconds` so that a crowd arrives during it."""
    import time

    from orders import services

    reads, real = [], services.purchase_snapshot

    def counted(**kwargs):
        reads.append(kwargs)
        time.sleep(seconds)
        return real(**kwargs)

    monkeypatch.setattr(services, "purchase_snapshot", counted)
    return reads


def _crowd(product_id: int, users: list) -> list:
    import threading

    from django.db import connection as thread_connection

    start, outcomes = threading.Barrier(len(users)), []

    def buy_one(user):
        start.wait()
        try:
            purchase(user=user, product_id=product_id)
            outcomes.append("bought")
        except Exception as refusal:  # each outcome is asserted by the caller
            outcomes.append(type(refusal).__name__)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=buy_one, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_buyers_arriving_during_the_first_read_use_it(make_product, make_user, monkeypatch):
    product = make_product(stock=0)
    users = [make_user() for _ in range(8)]
    reads = _slow_counted_snapshot(monkeypatch, 0.3)
    assert _crowd(product.pk, users) == ["SoldOut"] * 8
    assert len(reads) == 1


def test_buyers_of_a_product_with_a_limit_each_read_for_themselves(make_product, make_user, monkeypatch):
    product = make_product(stock=0, max_per_user=2)
    purchase_user = make_user()
    with pytest.raises(SoldOut):
        purchase(user=purchase_user, product_id=product.pk)  # learns that it has a limit
    users = [make_user() for _ in range(4)]
    reads = _slow_counted_snapshot(monkeypatch, 0.05)
    assert _crowd(product.pk, users) == ["SoldOut"] * 4
    assert sorted(read["user_id"] for read in reads) == sorted(user.pk for user in users)


def test_a_failed_first_read_wakes_the_waiters_who_read_for_themselves(make_product, make_user, monkeypatch):
    import time

    from django.db import OperationalError

    from orders import services

    product = make_product(stock=0)
    monkeypatch.setattr(sold_out, "READ_WAIT_SECONDS", 20)  # only the failed read's end wakes them early
    reads, real = [], services.purchase_snapshot

    def first_fails(**kwargs):
        reads.append(kwargs)
        if len(reads) == 1:
            time.sleep(0.3)  # the crowd arrives meanwhile and waits
            raise OperationalError("the server closed the connection")
        return real(**kwargs)

    monkeypatch.setattr(services, "purchase_snapshot", first_fails)
    waits, real_wait = [], sold_out.await_read_in_flight

    def recorded_wait(product_id):
        waits.append(real_wait(product_id))
        return waits[-1]

    monkeypatch.setattr(sold_out, "await_read_in_flight", recorded_wait)
    outcomes = _crowd(product.pk, [make_user() for _ in range(6)])
    assert sorted(outcomes) == ["OperationalError"] + ["SoldOut"] * 5
    assert True in waits and False not in waits  # waiters were woken by the failed read's end
    assert not sold_out._reads_in_flight
