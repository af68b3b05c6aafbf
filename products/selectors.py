"""Reads about products: the shop's listing and the cheap stock read."""

import threading
import time

from django.conf import settings
from django.db.models import QuerySet

from products.errors import ProductNotFound
from products.models import Product, sale_status


def shop_products() -> QuerySet[Product]:
    return Product.objects.order_by("sale_starts_at", "id")


def shop_product(product_id: int) -> Product:
    try:
        return Product.objects.get(pk=product_id)
    except Product.DoesNotExist:
        raise ProductNotFound() from None


def shop_product_by_slug(slug: str) -> Product:
    try:
        return Product.objects.get(slug=slug)
    except Product.DoesNotExist:
        raise ProductNotFound() from None


def stock_level(product_id: int) -> dict:
    """`{"id", "stock", "status"}` from one indexed read of three columns."""
    row = (
        Product.objects.all()
        .filter(pk=product_id)
        .values_list("stock", "sale_starts_at", "sale_ends_at")
        .first()
    )
    if row is None:
        raise ProductNotFound()
    stock, starts_at, ends_at = row
    return {"id": product_id, "stock": stock, "status": sale_status(stock=stock, starts_at=starts_at, ends_at=ends_at)}


_recent_levels: dict[int, tuple[float, dict]] = {}
_recent_levels_lock = threading.Lock()
_RECENT_LEVELS_MAX = 10_000  # products; a scan of random ids cannot grow it without bound


def stock_level_for_readers(product_id: int) -> dict:
    """`stock_level`, reused for up to STOCK_READ_CACHE_MS within this process.

    Only for the public stock endpoint, where thousands of pages poll one product: it
    may show a stock up to that old. Buyers never see it: `purchase` reads the row itself.
    """
    ttl = settings.STOCK_READ_CACHE_MS / 1000
    if ttl <= 0:
        return stock_level(product_id)
    now = time.monotonic()
    cached = _recent_levels.get(product_id)
    if cached is not None and now - cached[0] < ttl:
        return cached[1]
    level = stock_level(product_id)
    with _recent_levels_lock:
        if len(_recent_levels) >= _RECENT_LEVELS_MAX:
            _recent_levels.clear()
        _recent_levels[product_id] = (now, level)
    return level


MAX_STOCK_IDS = 100  # one sale list page's cards, with room to spare


def stock_levels_for_readers(product_ids: list[int]) -> list[dict]:
    """`stock_level_for_readers` for many products at once: one query for all that are not
    in this process's micro-cache. Unknown (or lab) ids are left out, not an error."""
    ttl = settings.STOCK_READ_CACHE_MS / 1000
    now = time.monotonic()
    levels, missing = {}, []
    for product_id in dict.fromkeys(product_ids):
        cached = _recent_levels.get(product_id) if ttl > 0 else None
        if cached is not None and now - cached[0] < ttl:
            levels[product_id] = cached[1]
        else:
            missing.append(product_id)
    if missing:
        rows = (
            Product.objects
            .filter(pk__in=missing)
            .values_list("pk", "stock", "sale_starts_at", "sale_ends_at")
        )
        fresh = {
            pk: {"id": pk, "stock": stock, "status": sale_status(stock=stock, starts_at=starts_at, ends_at=ends_at)}
            for pk, stock, starts_at, ends_at in rows
        }
        levels.update(fresh)
        if ttl > 0:
            with _recent_levels_lock:
                if len(_recent_levels) + len(fresh) >= _RECENT_LEVELS_MAX:
                    _recent_levels.clear()
                _recent_levels.update({pk: (now, level) for pk, level in fresh.items()})
    return [levels[pk] for pk in dict.fromkeys(product_ids) if pk in levels]
