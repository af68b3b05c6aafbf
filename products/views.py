"""The shopper's sale pages: the list, one sale with live stock, and the buy form.

The buy form posts to the same `purchase()` as the API (rate limits first, as there), and
re-renders the sale page with the outcome's message and status code; a success goes on
to the new order. Everything works by plain form posts; `static/js/sale.js` only adds
the live stock and the countdown.
"""

import uuid

from django import forms
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from flashsale.api_errors import STATUS_BY_CODE
from flashsale.errors import DomainError
from flashsale.ratelimits import enforce_purchase_limits
from orders.models import MAX_QUANTITY
from orders.services import purchase
from products.errors import ProductNotFound
from products.models import Product, SaleStatus
from products.selectors import shop_product_by_slug, shop_products

# Open sales first, then the ones about to open, then the rest.
_LIST_ORDER = {SaleStatus.ACTIVE: 0, SaleStatus.UPCOMING: 1, SaleStatus.SOLD_OUT: 2, SaleStatus.ENDED: 3}


class BuyForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=MAX_QUANTITY, initial=1)
    # One key per rendered form: a double click or a resubmitted page returns the same order.
    idempotency_key = forms.CharField(max_length=64, required=False, widget=forms.HiddenInput)


def sale_list(request):
    products = sorted(shop_products(), key=lambda product: _LIST_ORDER[product.status])
    return render(request, "products/sale_list.html", {"products": products, "now": timezone.now()})


def product_detail(request, slug):
    product = _product_or_404(slug)
    form = BuyForm(initial={"quantity": 1, "idempotency_key": uuid.uuid4().hex})
    return _render_product(request, product, form)


@require_POST
def buy(request, slug):
    product = _product_or_404(slug)
    if not request.user.is_authenticated:
        messages.info(request, "Log in to buy; you will come back to this sale.")
        return redirect_to_login(product_url(product))
    form = BuyForm(request.POST)
    try:
        enforce_purchase_limits(request)  # the contract's order: rate limits before input
        if not form.is_valid():
            return _render_product(request, product, form, status=400)
        result = purchase(
            user=request.user,
            product_id=product.pk,
            quantity=form.cleaned_data["quantity"],
            idempotency_key=form.cleaned_data["idempotency_key"] or None,
            admission_pass=request.POST.get("admission_pass") or None,  # the waiting room's buy form carries it
        )
    except DomainError as exc:
        form.add_error(None, exc.detail)
        response = _render_product(request, product, form, status=STATUS_BY_CODE[exc.code], outcome=exc.code)
        if exc.retry_after:
            response["Retry-After"] = str(exc.retry_after)
        return response
    order = result.order
    if result.created:
        messages.success(request, f"Order #{order.pk} confirmed: {order.quantity} × {product.name}.")
    else:
        messages.info(request, f"You already placed this order (#{order.pk}); nothing was bought twice.")
    return redirect("orders:detail", pk=order.pk)


def product_url(product: Product) -> str:
    return reverse("products:detail", kwargs={"slug": product.slug})


def _product_or_404(slug: str) -> Product:
    try:
        return shop_product_by_slug(slug)
    except ProductNotFound:
        raise Http404("No such sale.") from None


def _render_product(request, product, form, *, status=200, outcome=None):
    most = min(MAX_QUANTITY, product.max_per_user or MAX_QUANTITY, max(product.stock, 1))
    now = timezone.now()
    seconds_to_start = int((product.sale_starts_at - now).total_seconds()) + 1 if product.sale_starts_at else 0
    context = {"product": product, "form": form, "max_quantity": most, "outcome": outcome, "now": now,
               "seconds_to_start": max(seconds_to_start, 1)}
    return render(request, "products/product_detail.html", context, status=status)
