"""`manage.py reconcile_stock` and `manage.py create_shoppers`."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from rest_framework.authtoken.models import Token

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

def test_create_shoppers_writes_usable_tokens(db, tmp_path, client_for):
    tokens = tmp_path / "tokens.csv"
    call_command("create_shoppers", "25", "--prefix", "load", "--password", "pw-123456", "--tokens", str(tokens))
    lines = tokens.read_text().splitlines()
    assert len(lines) == 25
    username, key = lines[0].split(",")
    assert username == "load-00001"
    assert Token.objects.get(key=key).user.username == "load-00001"
    user = get_user_model().objects.get(username="load-00025")
    assert user.password.startswith("loadtest_md5$")
    assert user.check_password("pw-123456") and not user.is_staff
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/orders/").status_code == 200


def test_create_shoppers_again_keeps_accounts_and_tokens(db, tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    call_command("create_shoppers", "10", "--prefix", "again", "--tokens", str(first))
    call_command("create_shoppers", "12", "--prefix", "again", "--tokens", str(second))
    assert get_user_model().objects.filter(username__startswith="again-").count() == 12
    assert second.read_text().splitlines()[:10] == first.read_text().splitlines()


def test_create_shoppers_handles_ten_thousand(db, tmp_path):
    call_command("create_shoppers", "10000", "--prefix", "many", "--tokens", str(tmp_path / "t.csv"))
    assert Token.objects.filter(user__username__startswith="many-").count() == 10000
