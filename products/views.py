"""The shopper's sale pages: the list and one sale, both with live stock.

The buy form on a sale page belongs to `orders` (its view, form and template tag), so this
module never imports `orders`; `orders.views.buy` renders this page again with a refusal.
Everything works by plain links and form posts; `static/js/sale.js` adds the live stock,
the countdown and local times.
"""

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from products.errors import ProductNotFound
from products.models import Product, SaleStatus
from products.selectors import shop_product_by_slug, shop_products

# Open sales first, then the ones about to open, then the rest.
_LIST_ORDER = {SaleStatus.ACTIVE: 0, SaleStatus.UPCOMING: 1, SaleStatus.SOLD_OUT: 2, SaleStatus.ENDED: 3}


def sale_list(request):
    products = sorted(shop_products(), key=lambda product: _LIST_ORDER[product.status])
    return render(request, "products/sale_list.html", {"products": products, "now": timezone.now()})


def product_detail(request, slug):
    return render_product_page(request, product_or_404(slug))


def render_product_page(request, product: Product, *, status: int = 200, buy: dict | None = None) -> HttpResponse:
    """The sale page; `buy` carries a refused form back into the buy area (see orders.views.buy)."""
    now = timezone.now()
    seconds_to_start = int((product.sale_starts_at - now).total_seconds()) + 1 if product.sale_starts_at else 0
    context = {"product": product, "now": now, "seconds_to_start": max(seconds_to_start, 1), "buy": buy or {}}
    response = render(request, "products/product_detail.html", context, status=status)
    # Never restored from a cache: Back shows the live stock and a buy form with a fresh key.
    response["Cache-Control"] = "no-store"
    return response


def product_url(product: Product) -> str:
    return reverse("products:detail", kwargs={"slug": product.slug})


def product_or_404(slug: str) -> Product:
    try:
        return shop_product_by_slug(slug)
    except ProductNotFound:
        raise Http404("No such sale.") from None
