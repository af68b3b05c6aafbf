"""The only place order rows are locked; always after their product (see products/lock_objects.py)."""

from orders.errors import OrderNotFound
from orders.models import Order


def order_for_update(order_id: int) -> Order:
    """Lock one order row; call after locking its product."""
    try:
        return Order.objects.select_for_update(no_key=True, of=("self",)).get(pk=order_id)
    except Order.DoesNotExist:
        raise OrderNotFound() from None
