"""Reads about products: the shop's listing and the cheap stock read."""

from django.db.models import QuerySet

from products.errors import ProductNotFound
from products.models import Product, sale_status


def shop_products() -> QuerySet[Product]:
    return Product.objects.in_shop().order_by("sale_starts_at", "id")


def shop_product(product_id: int) -> Product:
    try:
        return Product.objects.in_shop().get(pk=product_id)
    except Product.DoesNotExist:
        raise ProductNotFound() from None


def shop_product_by_slug(slug: str) -> Product:
    try:
        return Product.objects.in_shop().get(slug=slug)
    except Product.DoesNotExist:
        raise ProductNotFound() from None


def stock_level(product_id: int) -> dict:
    """`{"id", "stock", "status"}` from one indexed read of three columns."""
    row = (
        Product.objects.in_shop()
        .filter(pk=product_id)
        .values_list("stock", "sale_starts_at", "sale_ends_at")
        .first()
    )
    if row is None:
        raise ProductNotFound()
    stock, starts_at, ends_at = row
    return {"id": product_id, "stock": stock, "status": sale_status(stock=stock, starts_at=starts_at, ends_at=ends_at)}
