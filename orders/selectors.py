"""Reads about orders: who may see which, and what a shopper already holds."""

from django.db import connection
from django.db.models import F, IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from orders.errors import OrderNotFound
from orders.models import Order, OrderStatus
from products.models import Product


def units_held(*, product_id: int, user_id: int) -> int:
    """A shopper's live units of one product (read under the product's lock by the purchase)."""
    held = Order.objects.filter(product_id=product_id, user_id=user_id, status=OrderStatus.CONFIRMED)
    return held.aggregate(units=Coalesce(Sum("quantity"), 0))["units"]


# One statement, hand-written: it runs for every buyer, and on a flash sale most of them are
# turned away right here, so building it with the ORM each time was a measurable share of the
# CPU (see docs/benchmarks.md).
_SNAPSHOT_SQL = """
    SELECT p.stock, p.max_per_user, p.sale_starts_at, p.sale_ends_at, p.waiting_room,
           CASE WHEN p.max_per_user IS NULL THEN 0 ELSE COALESCE(
               (SELECT SUM(o.quantity) FROM orders_order o
                 WHERE o.product_id = p.id AND o.user_id = %s AND o.status = %s), 0) END
      FROM products_product p
     WHERE p.id = %s AND NOT p.is_lab
"""
_SNAPSHOT_FIELDS = ("stock", "max_per_user", "sale_starts_at", "sale_ends_at", "waiting_room", "units_held")


def purchase_snapshot(*, product_id: int, user_id: int) -> dict | None:
    """An unlocked read of everything a purchase checks, to turn buyers away without queueing.

    Units held only matter (and are only summed) when the product has a per-shopper limit.
    """
    with connection.cursor() as cursor:
        cursor.execute(_SNAPSHOT_SQL, [user_id, OrderStatus.CONFIRMED.value, product_id])
        row = cursor.fetchone()
    return dict(zip(_SNAPSHOT_FIELDS, row, strict=True)) if row else None


def orders_visible_to(user) -> QuerySet[Order]:
    """Staff see every order; a shopper only their own (another's is simply not found)."""
    orders = Order.objects.select_related("product")
    if user.is_staff:
        return orders
    return orders.filter(user=user)


def filter_orders(orders: QuerySet[Order], *, product_id=None, username=None, status=None) -> QuerySet[Order]:
    if product_id is not None:
        orders = orders.filter(product_id=product_id)
    if username:
        orders = orders.filter(user__username=username)
    if status:
        orders = orders.filter(status=status)
    return orders


def order_visible_to(user, order_id: int) -> Order:
    try:
        return orders_visible_to(user).get(pk=order_id)
    except Order.DoesNotExist:
        raise OrderNotFound() from None


def order_for_key(*, user_id: int, idempotency_key: str) -> Order | None:
    return Order.objects.select_related("product").filter(user_id=user_id, idempotency_key=idempotency_key).first()


def stock_reconciliation() -> QuerySet:
    """Every product with its live units sold, for checking guarantee 1 (callers pick shop or lab rows).

    Rows carry `units_received`, `stock`, `units_sold` (non-cancelled orders) and
    `difference` = stock + units_sold - units_received, which must be 0.
    """
    sold = (
        Order.objects.filter(product=OuterRef("pk")).exclude(status=OrderStatus.CANCELLED)
        .order_by()
        .values("product")
        .annotate(units=Sum("quantity"))
        .values("units")
    )
    return (
        Product.objects.order_by("id")
        .annotate(units_sold=Coalesce(Subquery(sold, output_field=IntegerField()), Value(0)))
        .annotate(difference=F("stock") + F("units_sold") - F("units_received"))
        .values("id", "slug", "is_lab", "units_received", "stock", "units_sold", "difference")
    )
