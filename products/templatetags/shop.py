"""Small display helpers for the shop's templates."""

import json

from django import template

register = template.Library()

# The words for each sale status, in one place: the templates render them and hand them to
# sale.js (`data-labels`), which only ever switches between them as the server's status moves.
STATUS_LABELS = {"upcoming": "Starts soon", "active": "On sale", "sold_out": "Sold out", "ended": "Ended"}
BUTTON_LABELS = {"upcoming": "Not open yet", "active": "Buy now", "sold_out": "Sold out", "ended": "Sale ended"}


@register.filter
def stock_percent(product) -> int:
    """Share of the units received that are still in stock, 0-100, for the stock bar."""
    if not product.units_received:
        return 0
    return max(0, min(100, round(product.stock * 100 / product.units_received)))


@register.filter
def units_sold(product) -> int:
    """Units in live orders: by guarantee 1, what was received and is no longer in stock."""
    return max(product.units_received - product.stock, 0)


@register.filter
def stock_words(product) -> str:
    """The stock bar's spoken value."""
    status = product.status
    if status == "ended":
        return "Sale ended"
    if status == "sold_out":
        return f"Sold out, 0 of {product.units_received} left"
    return f"{product.stock} of {product.units_received} left"


@register.filter
def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


@register.filter
def button_label(status: str) -> str:
    return BUTTON_LABELS.get(status, status)


@register.simple_tag
def sale_labels() -> str:
    """The labels as JSON for a data attribute (the template escapes it)."""
    return json.dumps({"badge": STATUS_LABELS, "button": BUTTON_LABELS})


@register.filter
def money(value) -> str:
    return f"${value:,.2f}" if value is not None else ""


@register.filter
def duration(delta) -> str:
    """A timedelta as `1 h 05 min`, `3 min 20 s` or `12 s`."""
    if delta is None:
        return "—"
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"
