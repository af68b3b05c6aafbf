"""The shopper's own orders: the list, one order, and its cancel button.

Only the signed-in shopper's orders, staff included (staff see everyone's in the admin);
anyone else's order is a plain 404.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from flashsale.errors import DomainError
from orders.models import Order
from orders.selectors import orders_visible_to
from orders.services import cancel_order

PAGE_SIZE = 20


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
@require_POST
def order_cancel(request, pk):
    order = _own_order(request.user, pk)
    try:
        order = cancel_order(order=order)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Order #{order.pk} cancelled; {order.quantity} back in stock.")
    return redirect("orders:detail", pk=order.pk)
