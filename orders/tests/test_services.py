"""The purchase and cancel services, including their races, on real PostgreSQL."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from flashsale.db import startup_lock_timeout_ms
from flashsale.errors import Busy, InvalidInput
from orders.errors import AlreadyCancelled, IdempotencyKeyReused, PurchaseLimitReached
from orders.models import Order, OrderStatus
from orders.services import cancel_order, purchase
from products.errors import InsufficientStock, ProductNotFound, SaleEnded, SaleNotStarted, SoldOut
from tests.concurrency import run_at_once
from tests.invariants import assert_stock_reconciles


def test_purchase_takes_stock_and_records_the_order(make_product, shopper):
    product = make_product(stock=5, price="12.50")
    result = purchase(user=shopper, product_id=product.pk, quantity=2)
    order = result.order
    assert result.created
    assert (order.quantity, order.unit_price, order.status, order.remaining_stock) == (2, product.price, "confirmed", 3)
    product.refresh_from_db()
    assert product.stock == 3
    assert_stock_reconciles(product.pk)


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        (dict(starts_in=timedelta(minutes=5)), SaleNotStarted),
        (dict(ends_in=-timedelta(minutes=1)), SaleEnded),
        (dict(stock=0), SoldOut),
        (dict(stock=1), InsufficientStock),
    ],
)
def test_purchase_refusals_change_nothing(make_product, shopper, setup, error):
    product = make_product(**setup)
    stock_before = product.stock
    with pytest.raises(error):
        purchase(user=shopper, product_id=product.pk, quantity=2)
    product.refresh_from_db()
    assert product.stock == stock_before
    assert not Order.objects.exists()


def test_window_is_checked_before_limit_and_stock(make_product, shopper):
    product = make_product(stock=0, max_per_user=1, starts_in=timedelta(hours=1))
    with pytest.raises(SaleNotStarted):
        purchase(user=shopper, product_id=product.pk)


def test_limit_is_checked_before_stock(make_product, shopper):
    product = make_product(stock=1, max_per_user=1)
    purchase(user=shopper, product_id=product.pk)
    with pytest.raises(PurchaseLimitReached):  # stock is 0 now, but the limit comes first
        purchase(user=shopper, product_id=product.pk)


def test_cancelled_units_do_not_count_against_the_limit(make_product, shopper):
    product = make_product(stock=5, max_per_user=2)
    first = purchase(user=shopper, product_id=product.pk, quantity=2).order
    cancel_order(order=first)
    purchase(user=shopper, product_id=product.pk, quantity=2)
    with pytest.raises(PurchaseLimitReached):
        purchase(user=shopper, product_id=product.pk)


def test_unknown_products_are_not_found(shopper):
    with pytest.raises(ProductNotFound):
        purchase(user=shopper, product_id=999_999_999)


@pytest.mark.parametrize(
    "kwargs",
    [dict(quantity=0), dict(quantity=101), dict(quantity=True), dict(quantity="1"), dict(product_id=-1),
     dict(product_id=2**63), dict(idempotency_key=""), dict(idempotency_key="x" * 256), dict(idempotency_key="é")],
)
def test_purchase_rejects_bad_input(make_product, shopper, kwargs):
    product = make_product()
    with pytest.raises(InvalidInput):
        purchase(user=shopper, **{"product_id": product.pk, **kwargs})
    product.refresh_from_db()
    assert product.stock == 10


def test_lock_is_taken_before_stock_is_written(make_product, shopper, settings):
    """The row lock (FOR NO KEY UPDATE) must precede the decrement and the insert (as Saleor asserts)."""
    product = make_product()
    with CaptureQueriesContext(connection) as queries:
        purchase(user=shopper, product_id=product.pk)
    statements = [q["sql"] for q in queries.captured_queries]
    lock = next(i for i, sql in enumerate(statements) if "FOR NO KEY UPDATE" in sql)
    update = next(i for i, sql in enumerate(statements) if sql.startswith('UPDATE "products_product"'))
    insert = next(i for i, sql in enumerate(statements) if sql.startswith('INSERT INTO "orders_order"'))
    # The lock timeout is in force at the lock: set on the connection at connect time, or
    # (when the setting differs from it) by a statement of this transaction before the lock.
    timeout_on_connect = startup_lock_timeout_ms() == settings.LOCK_TIMEOUT_MS
    assert timeout_on_connect or any("lock_timeout" in sql for sql in statements[:lock])
    assert lock < update < insert
    assert '"stock" - ' in statements[update]  # an F() decrement, not a written-back value


def test_idempotent_retry_returns_the_same_order(make_product, shopper):
    product = make_product(stock=3)
    first = purchase(user=shopper, product_id=product.pk, quantity=1, idempotency_key="abc-1")
    again = purchase(user=shopper, product_id=product.pk, quantity=1, idempotency_key="abc-1")
    assert first.created and not again.created
    assert again.order.pk == first.order.pk
    assert Order.objects.count() == 1
    with pytest.raises(IdempotencyKeyReused):
        purchase(user=shopper, product_id=product.pk, quantity=2, idempotency_key="abc-1")


def test_idempotent_retry_replays_even_after_sell_out(make_product, shopper, make_user):
    product = make_product(stock=1)
    first = purchase(user=shopper, product_id=product.pk, idempotency_key="k")
    again = purchase(user=shopper, product_id=product.pk, idempotency_key="k")  # stock is 0 now
    assert again.order.pk == first.order.pk
    other = make_user()
    with pytest.raises(SoldOut):  # keys are per shopper
        purchase(user=other, product_id=product.pk, idempotency_key="k")


def test_cancel_returns_units_once(make_product, shopper):
    product = make_product(stock=4)
    order = purchase(user=shopper, product_id=product.pk, quantity=3).order
    cancelled = cancel_order(order=order)
    assert cancelled.status == OrderStatus.CANCELLED and cancelled.cancelled_at is not None
    with pytest.raises(AlreadyCancelled):
        cancel_order(order=order)
    product.refresh_from_db()
    assert product.stock == 4
    assert_stock_reconciles(product.pk)


# Races: real threads, each with its own connection.


@pytest.mark.django_db(transaction=True)
def test_300_buyers_for_30_units_sell_exactly_30(make_product, make_user):
    product = make_product(stock=30)
    buyers = [make_user() for _ in range(300)]
    results = run_at_once(lambda user: purchase(user=user, product_id=product.pk), [(b,) for b in buyers])
    sold = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(sold) == 30
    assert all(isinstance(r, SoldOut) for r in refused), {type(r) for r in refused}
    product.refresh_from_db()
    assert product.stock == 0
    assert Order.objects.count() == 30
    assert sorted(r.order.remaining_stock for r in sold) == list(range(30))
    assert_stock_reconciles(product.pk)


@pytest.mark.django_db(transaction=True)
def test_multi_unit_race_never_oversells(make_product, make_user):
    product = make_product(stock=10)
    buyers = [make_user() for _ in range(40)]
    results = run_at_once(lambda user: purchase(user=user, product_id=product.pk, quantity=3), [(b,) for b in buyers])
    sold = [r for r in results if not isinstance(r, Exception)]
    assert len(sold) == 3  # 9 units; the last unit cannot satisfy a 3-unit order
    assert {type(r) for r in results if isinstance(r, Exception)} <= {InsufficientStock, SoldOut}
    assert any(isinstance(r, InsufficientStock) for r in results)
    product.refresh_from_db()
    assert product.stock == 1
    assert_stock_reconciles(product.pk)


@pytest.mark.django_db(transaction=True)
def test_one_shopper_firing_50_requests_gets_exactly_the_limit(make_product, shopper):
    product = make_product(stock=100, max_per_user=2)
    results = run_at_once(lambda: purchase(user=shopper, product_id=product.pk), [()] * 50)
    assert sum(not isinstance(r, Exception) for r in results) == 2
    assert all(isinstance(r, PurchaseLimitReached) for r in results if isinstance(r, Exception))
    held = Order.objects.filter(user=shopper, status="confirmed").aggregate(u=Sum("quantity"))["u"]
    assert held == 2
    assert_stock_reconciles(product.pk)


@pytest.mark.django_db(transaction=True)
def test_cancels_racing_purchases_keep_stock_reconciled(make_product, make_user):
    product = make_product(stock=20)
    early = [purchase(user=make_user(), product_id=product.pk).order for _ in range(10)]
    buyers = [make_user() for _ in range(40)]
    calls = [("cancel", order) for order in early] + [("buy", b) for b in buyers] + [("cancel", o) for o in early[:5]]

    def act(kind, target):
        if kind == "cancel":
            return cancel_order(order=target)
        return purchase(user=target, product_id=product.pk)

    results = run_at_once(act, calls)
    unexpected = [r for r in results if isinstance(r, Exception) and not isinstance(r, (SoldOut, AlreadyCancelled))]
    assert not unexpected
    assert sum(isinstance(r, AlreadyCancelled) for r in results) == 5  # each order cancels once
    assert Order.objects.filter(status="cancelled").count() == 10
    assert_stock_reconciles(product.pk)


@pytest.mark.django_db(transaction=True)
def test_racing_retries_with_one_key_make_one_order(make_product, shopper):
    product = make_product(stock=50)
    results = run_at_once(
        lambda: purchase(user=shopper, product_id=product.pk, quantity=2, idempotency_key="same-key"), [()] * 20
    )
    orders = {r.order.pk for r in results if not isinstance(r, Exception)}
    assert len(orders) == 1
    assert Order.objects.count() == 1
    # Losers either saw the key in flight (409) or replayed the committed order.
    from orders.errors import IdempotencyKeyInUse

    assert all(isinstance(r, IdempotencyKeyInUse) for r in results if isinstance(r, Exception))
    product.refresh_from_db()
    assert product.stock == 48


@pytest.mark.django_db(transaction=True)
def test_lock_held_past_the_timeout_is_busy_and_changes_nothing(make_product, shopper, settings, row_locked_elsewhere):
    settings.LOCK_TIMEOUT_MS = 200
    product = make_product(stock=5)
    with row_locked_elsewhere(product.pk), pytest.raises(Busy) as caught:
        purchase(user=shopper, product_id=product.pk)
    assert caught.value.retry_after >= 1
    product.refresh_from_db()
    assert product.stock == 5
    assert not Order.objects.exists()
    purchase(user=shopper, product_id=product.pk)  # and it works again once the lock is gone

