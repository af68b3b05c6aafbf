"""The shop's buy form, and how many units a shopper may still ask for on it."""

import uuid
from dataclasses import dataclass

from django import forms

from orders.models import MAX_QUANTITY
from orders.selectors import units_held_by
from products.models import Product


class BuyForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=MAX_QUANTITY, initial=1)
    # One key per rendered form: a double click or a resubmitted page returns the same order.
    idempotency_key = forms.CharField(max_length=64, required=False, widget=forms.HiddenInput)

    @classmethod
    def fresh(cls, quantity=1) -> "BuyForm":
        return cls(initial={"quantity": quantity, "idempotency_key": new_form_key()})

    def purchase_key(self) -> str | None:
        """The Idempotency-Key for `purchase`: the form's key plus the quantity asked for.

        A double click sends the same form twice and buys once. A page restored by Back
        (with its old key) and a new quantity is a new purchase, never a 422 "key reused".
        """
        key = self.cleaned_data["idempotency_key"]
        return f"{key}:{self.cleaned_data['quantity']}" if key else None


def new_form_key() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Allowance:
    held: int  # the shopper's live units of this product (0 when there is no limit)
    most: int  # the most one order may ask for now: stock, per-shopper limit, request ceiling

    @property
    def limit_reached(self) -> bool:
        return self.most <= 0 and self.held > 0


def allowance_for(user, product: Product) -> Allowance:
    """What this shopper may still buy; the server checks again under the lock on every buy."""
    held = 0
    if product.max_per_user is not None and user.is_authenticated:
        held = units_held_by(product_id=product.pk, user_ids=[user.pk]).get(user.pk, 0)
    most = min(MAX_QUANTITY, max(product.stock, 0))
    if product.max_per_user is not None:
        most = min(most, max(product.max_per_user - held, 0))
    return Allowance(held=held, most=most)
