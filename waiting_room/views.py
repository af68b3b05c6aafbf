"""The shopper's waiting page: join, see one's place and the estimated wait, then buy.

Works without JavaScript: a `<noscript>` meta refresh reloads the page after the
`retry_after` the line gives; `static/js/waiting-room.js` instead polls the queue API and
updates the page in place, reloading it once admitted. Once admitted, the page is the buy
form, carrying the pass to the same `orders:buy` view every purchase goes through.
"""

import uuid

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from flashsale.errors import DomainError
from orders.models import MAX_QUANTITY
from products.errors import ProductNotFound
from products.selectors import shop_product_by_slug
from waiting_room import services
from waiting_room.errors import NoTicket


@require_http_methods(["GET", "POST"])
def waiting_page(request, slug):
    try:
        product = shop_product_by_slug(slug)
    except ProductNotFound:
        raise Http404("No such sale.") from None
    if not request.user.is_authenticated:
        messages.info(request, "Log in to join the line; you will come back here.")
        return redirect_to_login(request.get_full_path())
    if request.user.is_staff:
        raise PermissionDenied("Staff do not queue; the line is for shoppers.")
    if not product.waiting_room:
        return redirect(reverse("products:detail", kwargs={"slug": product.slug}))
    standing, error, status = None, None, 200
    try:
        if request.method == "POST":
            services.join_line(user=request.user, product_id=product.pk)
            return redirect(reverse("waiting_room:line", kwargs={"slug": product.slug}))  # post/redirect/get
        standing = services.line_standing(user=request.user, product_id=product.pk)
    except NoTicket:
        pass  # not in line yet: the page offers to join
    except DomainError as exc:
        error, status = exc, exc.code.status
    context = {
        "product": product,
        "standing": standing,
        "error": error,
        "max_quantity": min(MAX_QUANTITY, product.max_per_user or MAX_QUANTITY, max(product.stock, 1)),
        "idempotency_key": uuid.uuid4().hex,
        "now": timezone.now(),
    }
    return render(request, "waiting_room/waiting_page.html", context, status=status)
