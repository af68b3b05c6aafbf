"""Guarantee 1, checked straight against the database."""

from django.db.models import Sum

from orders.models import Order, OrderStatus
from products.models import Product


def assert_stock_reconciles(product_id: int) -> None:
    product = Product.objects.get(pk=product_id)
    live = Order.objects.filter(product_id=product_id).exclude(status=OrderStatus.CANCELLED)
    sold = live.aggregate(units=Sum("quantity"))["units"] or 0
    assert product.stock >= 0
    assert product.stock + sold == product.units_received, (product.stock, sold, product.units_received)
