"""Hypothesis: any sequence of purchases, cancels and restocks keeps guarantees 1 and 2.

A tiny model (stock, each shopper's live units, live orders) predicts every answer; the
database must agree with it after each step, and the contract's identities must hold.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flashsale.errors import DomainError
from orders.errors import AlreadyCancelled, PurchaseLimitReached
from orders.models import Order, OrderStatus
from orders.services import cancel_order, purchase
from products.errors import InsufficientStock, SoldOut
from products.services import create_product, restock
from tests.invariants import assert_stock_reconciles

SHOPPERS = 3

steps = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.integers(0, SHOPPERS - 1), st.integers(1, 4)),
        st.tuples(st.just("cancel"), st.integers(0, 30), st.just(0)),
        st.tuples(st.just("restock"), st.just(0), st.integers(1, 5)),
    ),
    max_size=25,
)


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(stock=st.integers(0, 8), max_per_user=st.one_of(st.none(), st.integers(1, 5)), steps=steps)
def test_any_sequence_of_purchases_cancels_and_restocks_keeps_the_guarantees(stock, max_per_user, steps,
                                                                             django_capture_on_commit_callbacks):
    _run(stock, max_per_user, steps, django_capture_on_commit_callbacks)


def _run(stock, max_per_user, steps, on_commit):
    stamp = timezone.now().strftime("%H%M%S%f")
    users = [get_user_model().objects.create_user(f"prop-{stamp}-{i}") for i in range(SHOPPERS)]
    product = create_product(name=f"Prop {stamp}", price=Decimal("3.00"), stock=stock, max_per_user=max_per_user,
                             sale_starts_at=timezone.now() - timedelta(hours=1), sale_ends_at=None)
    model_stock, held, orders = stock, [0] * SHOPPERS, []

    for action, who, amount in steps:
        # Each step's on-commit work (the sold-out mark set or cleared) runs as its commit
        # would: without it a mark one step's pre-check set outlived the next step's restock.
        with on_commit(execute=True):
            if action == "buy":
                expected = _expected_refusal(model_stock, held[who], amount, max_per_user)
                try:
                    order = purchase(user=users[who], product_id=product.pk, quantity=amount).order
                except DomainError as exc:
                    assert type(exc) is expected, (exc, expected)
                    continue
                assert expected is None
                model_stock -= amount
                held[who] += amount
                orders.append((order, who))
                assert order.remaining_stock == model_stock
            elif action == "cancel" and orders:
                order, owner = orders[who % len(orders)]
                try:
                    cancel_order(order=order)
                except AlreadyCancelled:
                    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
                    continue
                model_stock += order.quantity
                held[owner] -= order.quantity
            elif action == "restock":
                restock(product=product, quantity=amount)
                model_stock += amount

        product.refresh_from_db()
        assert product.stock == model_stock
        assert_stock_reconciles(product.pk)
        for index, user in enumerate(users):
            live = Order.objects.filter(product=product, user=user, status=OrderStatus.CONFIRMED)
            units = live.aggregate(units=Sum("quantity"))["units"] or 0
            assert units == held[index]
            if max_per_user is not None:
                assert units <= max_per_user


def _expected_refusal(stock, held, quantity, max_per_user):
    """The contract's order of checks: per-shopper limit, then stock."""
    if max_per_user is not None and held + quantity > max_per_user:
        return PurchaseLimitReached
    if stock <= 0:
        return SoldOut
    if stock < quantity:
        return InsufficientStock
    return None
