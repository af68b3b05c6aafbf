"""`manage.py reconcile_stock`."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from orders.services import cancel_order, purchase


def test_reconcile_prints_ok_for_every_balanced_product(make_product, shopper):
    sold = make_product(stock=5, slug="sold-some")
    make_product(stock=2, slug="untouched")
    purchase(user=shopper, product_id=sold.pk, quantity=2)
    cancel_order(order=purchase(user=shopper, product_id=sold.pk).order)
    out = io.StringIO()
    call_command("reconcile_stock", stdout=out)
    lines = out.getvalue().splitlines()
    row = next(line for line in lines if line.startswith("sold-some"))
    assert row.split()[1:6] == ["5", "3", "2", "+0", "OK"]
    assert any(line.startswith("untouched") and line.endswith("OK") for line in lines)
    assert "All 2 products reconcile." in out.getvalue()


def test_reconcile_catches_a_planted_mismatch(make_product, shopper):
    product = make_product(stock=5, slug="tampered")
    make_product(stock=5, slug="fine")
    purchase(user=shopper, product_id=product.pk)
    with connection.cursor() as cursor:  # a bug or a hand edit that bypassed the services
        cursor.execute("UPDATE products_product SET stock = stock - 2 WHERE id = %s", [product.pk])
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 of 2 products do not reconcile") as caught:
        call_command("reconcile_stock", "--mismatches-only", stdout=out)
    assert caught.value.returncode == 1
    (row,) = [line for line in out.getvalue().splitlines()[1:]]
    assert row.split() == ["tampered", "5", "2", "1", "-2", "MISMATCH"]
