"""`manage.py restock`."""

import io

import pytest
from django.core.management import CommandError, call_command

from tests.invariants import assert_stock_reconciles


def test_restock_raises_stock_and_units_received(make_product):
    product = make_product(stock=3, slug="red-shoes")
    out = io.StringIO()
    call_command("restock", "red-shoes", "7", stdout=out)
    product.refresh_from_db()
    assert (product.stock, product.units_received) == (10, 10)
    assert "stock 3 -> 10" in out.getvalue()
    assert_stock_reconciles(product.pk)


def test_restock_of_unknown_slug_fails_clearly(db):
    with pytest.raises(CommandError, match="No product with slug 'nope'") as caught:
        call_command("restock", "nope", "5")
    assert caught.value.returncode == 1


@pytest.mark.parametrize("quantity", ["0", "-4", "1000001"])
def test_restock_refuses_bad_quantities_and_changes_nothing(make_product, quantity):
    product = make_product(stock=3, slug="blue-shoes")
    with pytest.raises(CommandError, match="Restock quantity"):
        call_command("restock", "blue-shoes", quantity)
    product.refresh_from_db()
    assert product.stock == 3

