"""Reads about orders: who may see which, and what a shopper already holds."""

from django.db import connection
from django.db.models import F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from orders.errors import OrderNotFound
from orders.models import Order, OrderStatus
from products.models import Product


def units_held_by(*, product_id: int, user_ids) -> dict[int, int]:
    """Each shopper's live units of one product, in one read (under the lock, by a purchase group).

    Shoppers holding none are absent.
    """
    held = (
        Order.objects.filter(product_id=product_id, user_id__in=list(user_ids), status=OrderStatus.CONFIRMED)
        .order_by()
        .values("user_id")
        .annotate(units=Sum("quantity"))
    )
    return {row["user_id"]: row["units"] for row in held}


# One statement, hand-written: it runs for every buyer, and on a flash sale most of them are
# turned away right here, so building it with the ORM each time was a measurable share of the
# CPU (see docs/benchmarks.md).
_SNAPSHOT_SQL = """
    SELECT p.stock, p.max_per_user, p.sale_starts_at, p.sale_ends_at, p.waiting_room,
           CASE WHEN p.max_per_user IS NULL THEN 0 ELSE COALESCE(
               (SELECT SUM(o.quantity) FROM orders_order o
                 WHERE o.product_id = p.id AND o.user_id = %s AND o.status = %s), 0) END
      FROM products_product p
     WHERE p.id = %s
"""
_SNAPSHOT_FIELDS = ("stock", "max_per_user", "sale_starts_at", "sale_ends_at", "waiting_room", "units_held")
# The product columns among them: the sold-out mark carries the same facts, taken from the
# row the purchase locked (products.lock_objects.product_for_purchase must load each).
SNAPSHOT_PRODUCT_FIELDS = _SNAPSHOT_FIELDS[:-1]


def purchase_snapshot(*, product_id: int, user_id: int) -> dict | None:
    """An unlocked read of everything a purchase checks, to turn buyers away without queueing.

    Units held only matter (and are only summed) when the product has a per-shopper limit.
    """
    with connection.cursor() as cursor:
        cursor.execute(_SNAPSHOT_SQL, [user_id, OrderStatus.CONFIRMED.value, product_id])
        row = cursor.fetchone()
    return dict(zip(_SNAPSHOT_FIELDS, row, strict=True)) if row else None


def sold_out_snapshot(product: Product) -> dict:
    """What `purchase_snapshot` would read for a product just sold out (for products.sold_out).

    Only ever used for products without a per-shopper limit, so no shopper's units matter.
    """
    return {**{name: getattr(product, name) for name in SNAPSHOT_PRODUCT_FIELDS}, "stock": 0, "units_held": 0}


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


def orders_for_keys(*, pairs: list[tuple[int, str]]) -> dict[tuple[int, str], Order]:
    """The orders already made for any of these (shopper, Idempotency-Key) pairs, in one read."""
    wanted = Q()
    for user_id, key in pairs:
        wanted |= Q(user_id=user_id, idempotency_key=key)
    found = Order.objects.select_related("product").filter(wanted)
    return {(order.user_id, order.idempotency_key): order for order in found}


def stock_reconciliation() -> QuerySet:
    """Every product with its live units sold, for checking guarantee 1.

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
        .values("id", "slug", "units_received", "stock", "units_sold", "difference")
    )
