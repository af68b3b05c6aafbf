"""The shopper's orders: the buy form's post, the list, one order, and cancelling (asked once).

Only the signed-in shopper's orders, staff included (staff see everyone's in the admin);
anyone else's order is a plain 404.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from flashsale.errors import DomainError
from flashsale.ratelimits import enforce_purchase_limits
from orders.forms import BuyForm
from orders.models import Order
from orders.selectors import orders_visible_to
from orders.services import cancel_order, purchase
from products.views import product_or_404, product_url, render_product_page

PAGE_SIZE = 20


@require_http_methods(["GET", "HEAD", "POST"])
def buy(request, slug):
    """The buy form's target. A GET (Enter in the address bar, a restored tab) goes back to the sale."""
    product = product_or_404(slug)
    if request.method != "POST":
        return redirect(product_url(product))
    if not request.user.is_authenticated:
        messages.info(request, "Log in to buy; you will come back to this sale.")
        return redirect_to_login(product_url(product))
    form = BuyForm(request.POST)
    try:
        enforce_purchase_limits(request)  # the contract's order: rate limits before input
        if not form.is_valid():
            return _refused(request, product, form, status=400, outcome="invalid")
        result = purchase(
            user=request.user,
            product_id=product.pk,
            quantity=form.cleaned_data["quantity"],
            idempotency_key=form.purchase_key(),
            admission_pass=request.POST.get("admission_pass") or None,  # the waiting page's buy form carries it
        )
    except DomainError as exc:
        response = _refused(request, product, form, status=exc.code.status, outcome=exc.code, error=exc.detail)
        if exc.retry_after:
            response["Retry-After"] = str(exc.retry_after)
        return response
    order = result.order
    if result.created:
        messages.success(request, f"Order #{order.pk} confirmed: {order.quantity} × {product.name}.")
    else:
        messages.info(request, f"You already placed this order (#{order.pk}); nothing was bought twice.")
    return redirect("orders:detail", pk=order.pk)


def _refused(request, product, form, *, status, outcome, error=None):
    """The sale page again with the message, the quantity typed, and a fresh form key:
    nothing was bought, so the next try is a new purchase."""
    quantity_error = None
    if error is None:  # the form itself was refused
        quantity_error = (form.errors.get("quantity") or [None])[0]
        error = f"Quantity: {quantity_error}" if quantity_error else "This form has expired; please try again."
    again = BuyForm.fresh(quantity=form.data.get("quantity") or 1)
    return render_product_page(request, product, status=status, buy={
        "form": again, "error": error, "outcome": outcome, "quantity_error": quantity_error,
    })


def _own_orders(user):
    return orders_visible_to(user).filter(user=user)


def _own_order(user, pk: int) -> Order:
    try:
        return _own_orders(user).get(pk=pk)
    except Order.DoesNotExist:
        raise Http404("No such order.") from None


@login_required
def order_list(request):
    page = Paginator(_own_orders(request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "orders/order_list.html", {"page": page, "orders": page.object_list})


@login_required
def order_detail(request, pk):
    return render(request, "orders/order_detail.html", {"order": _own_order(request.user, pk)})


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def order_cancel(request, pk):
    """GET asks "are you sure?" (a page of its own, no JavaScript needed); POST cancels."""
    order = _own_order(request.user, pk)
    if request.method != "POST":
        if order.is_cancelled:
            return redirect("orders:detail", pk=order.pk)
        return render(request, "orders/order_cancel.html", {"order": order})
    try:
        order = cancel_order(order=order)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Order #{order.pk} cancelled; {order.quantity} back in stock.")
    return redirect("orders:detail", pk=order.pk)
