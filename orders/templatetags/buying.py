"""`{% buy_area product %}`: the buy form on a sale page, from `orders` into `products`' template."""

from django import template

from orders.forms import BuyForm, allowance_for

register = template.Library()


@register.inclusion_tag("orders/_buy_area.html", takes_context=True)
def buy_area(context, product):
    request = context["request"]
    refused = context.get("buy") or {}
    form = refused.get("form") or BuyForm.fresh()
    allowance = allowance_for(request.user, product)
    return {
        "request": request,
        "user": request.user,
        "csrf_token": context.get("csrf_token"),
        "product": product,
        "status": product.status,
        "form": form,
        "error": refused.get("error"),
        "outcome": refused.get("outcome"),
        "quantity_error": refused.get("quantity_error"),
        "allowance": allowance,
        # A box whose only possible value is 1 is noise: the form sends 1 by itself.
        "one_only": product.max_per_user == 1 or allowance.most == 1,
        "one_only_reason": _one_only_reason(product, allowance),
    }


def _one_only_reason(product, allowance) -> str:
    if product.max_per_user == 1:
        return "One per shopper."
    if allowance.most == 1 and not allowance.held:
        return "Only one left."
    return ""
