"""Reads about lines: the product facts a line needs, and the figures staff see."""

from django.utils import timezone

from products.errors import ProductNotFound
from products.models import Product, sale_status
from waiting_room import line
from waiting_room.passes import to_ms

_FACTS = ("id", "created_at", "waiting_room", "admit_per_minute", "stock", "sale_starts_at", "sale_ends_at")


def line_facts(product_id: int) -> dict:
    """One indexed read: the product's waiting-room settings, window and stock, with its status."""
    facts = Product.objects.filter(pk=product_id).values(*_FACTS).first()
    if facts is None:
        raise ProductNotFound()
    facts["status"] = sale_status(stock=facts["stock"], starts_at=facts["sale_starts_at"],
                                  ends_at=facts["sale_ends_at"])
    return facts


def line_id(product_id: int, created_at) -> str:
    """The name of a product's line in Redis: its id alone could be reused after a database reset."""
    return f"{product_id}.{to_ms(created_at)}"


def start_ms(starts_at) -> int:
    """The moment admission begins; a sale open from the beginning of time starts at the epoch."""
    return to_ms(starts_at) if starts_at is not None else 0


def line_figures(*, now=None) -> list[dict] | None:
    """Per product with a waiting room: its line's length, how many were admitted, its rate.

    None when Redis cannot be reached (the waiting room is open; there is no line to count).
    """
    now = now or timezone.now()
    products = Product.objects.filter(waiting_room=True).order_by("id")
    rows = []
    try:
        for product in products.values("id", "slug", "name", "admit_per_minute", "sale_starts_at", "created_at"):
            length, admitted = line.figures(line_id=line_id(product["id"], product["created_at"]), now_ms=to_ms(now),
                                            start_ms=start_ms(product["sale_starts_at"]),
                                            rate=product["admit_per_minute"])
            rows.append({**product, "length": length, "admitted": admitted, "waiting": length - admitted})
    except Exception:  # Redis unreachable, whatever the client raised
        if line.reachable():
            raise
        return None
    return rows
