"""The only place order-related rows are locked (see products/lock_objects.py for the order)."""

from flashsale.metrics import row_lock_wait
from orders.errors import OrderNotFound
from orders.models import Order
from products.errors import ProductNotFound
from products.models import Product


def product_for_purchase(product_id: int) -> Product:
    """Lock a shop product's row for a purchase, loading only what the checks need.

    Anything else the purchase reads under this lock (the buyer's held units) must be a
    *separate, later* statement: under READ COMMITTED a statement that waited for the
    lock re-reads the locked row but keeps its old snapshot for everything else, so a
    subquery here would miss the order that the previous lock holder just committed.
    """
    try:
        with row_lock_wait():
            return (
                Product.objects.select_for_update(no_key=True, of=("self",))
                .filter(is_lab=False)
                .only("id", "name", "price", "stock", "max_per_user", "sale_starts_at", "sale_ends_at")
                .get(pk=product_id)
            )
    except Product.DoesNotExist:
        raise ProductNotFound() from None


def order_for_update(order_id: int) -> Order:
    """Lock one order row; call after locking its product."""
    try:
        return Order.objects.select_for_update(of=("self",)).get(pk=order_id)
    except Order.DoesNotExist:
        raise OrderNotFound() from None
