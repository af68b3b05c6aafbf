"""The only place product rows are locked.

Every code path that locks rows takes the product row first (then, for a cancel, the
order row), so two transactions can never wait on each other in opposite orders.
`no_key=True` (FOR NO KEY UPDATE) still serialises writers of the row but lets orders
that reference it be inserted without waiting (their FK check takes FOR KEY SHARE).
"""

from flashsale.metrics import row_lock_wait
from products.errors import ProductNotFound
from products.models import Product


def product_for_update(product_id: int) -> Product:
    """Lock one product row until the end of the transaction."""
    try:
        return Product.objects.select_for_update(no_key=True, of=("self",)).get(pk=product_id)
    except Product.DoesNotExist:
        raise ProductNotFound() from None


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
                .only("id", "name", "price", "stock", "max_per_user", "sale_starts_at", "sale_ends_at", "waiting_room")
                .get(pk=product_id)
            )
    except Product.DoesNotExist:
        raise ProductNotFound() from None
