"""The buy form on a sale page (orders.views.buy), through Django's test client (real DB and Redis)."""

from datetime import timedelta

import pytest
from django.urls import reverse

from orders.models import Order
from products.models import Product
from tests.invariants import assert_stock_reconciles

pytestmark = pytest.mark.django_db


def buy_url(product):
    return reverse("orders:buy", kwargs={"slug": product.slug})


def detail_url(product):
    return reverse("products:detail", kwargs={"slug": product.slug})


def test_anonymous_buy_goes_to_login_and_back(client, make_product):
    product = make_product()
    response = client.post(buy_url(product), {"quantity": 1})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert detail_url(product) in response["Location"].replace("%2F", "/")
    assert not Order.objects.exists()


def test_buy_makes_the_order_through_purchase_and_shows_it(client, make_product, shopper, no_rate_limits):
    product = make_product(stock=5, price="20.00")
    client.force_login(shopper)
    response = client.post(buy_url(product), {"quantity": 2, "idempotency_key": "k1"}, follow=True)
    order = Order.objects.get()
    assert response.redirect_chain[-1][0] == reverse("orders:detail", kwargs={"pk": order.pk})
    assert (order.user, order.quantity, order.remaining_stock) == (shopper, 2, 3)
    assert f"Order #{order.pk} confirmed" in response.content.decode()
    assert_stock_reconciles(product.pk)


def test_resubmitting_the_same_form_buys_once(client, make_product, shopper, no_rate_limits):
    product = make_product(stock=5)
    client.force_login(shopper)
    for _ in range(2):
        response = client.post(buy_url(product), {"quantity": 1, "idempotency_key": "same-form"}, follow=True)
    assert Order.objects.count() == 1
    assert "nothing was bought twice" in response.content.decode()


@pytest.mark.parametrize(
    ("setup", "quantity", "status", "code", "message"),
    [
        (dict(stock=0), 1, 409, "sold_out", "Sold out."),
        (dict(stock=2), 3, 409, "insufficient_stock", "Only 2 left; you asked for 3."),
        (dict(starts_in=timedelta(hours=1)), 1, 409, "sale_not_started", "The sale has not started yet."),
        (dict(ends_in=-timedelta(minutes=1)), 1, 409, "sale_ended", "The sale has ended."),
        (dict(max_per_user=1), 2, 409, "purchase_limit_reached", "The limit is 1 per shopper"),
    ],
)
def test_every_refusal_shows_its_message_and_changes_nothing(
    client, make_product, shopper, no_rate_limits, setup, quantity, status, code, message
):
    product = make_product(**setup)
    client.force_login(shopper)
    response = client.post(buy_url(product), {"quantity": quantity})
    html = response.content.decode()
    assert response.status_code == status
    assert f'data-outcome="{code}"' in html
    assert message in html
    assert not Order.objects.exists()


def test_rate_limited_buyers_are_told_to_wait(client, make_product, shopper, settings):
    settings.RATE_LIMIT_PURCHASE_USER = "2/m"
    product = make_product(stock=50)
    client.force_login(shopper)
    answers = [client.post(buy_url(product), {"quantity": 1}) for _ in range(3)]
    assert [a.status_code for a in answers] == [302, 302, 429]
    assert 'data-outcome="rate_limited"' in answers[-1].content.decode()
    assert int(answers[-1]["Retry-After"]) >= 1
    assert Order.objects.count() == 2


def test_invalid_quantity_is_a_form_error(client, make_product, shopper, no_rate_limits):
    product = make_product()
    client.force_login(shopper)
    for bad in ("0", "101", "abc", ""):
        response = client.post(buy_url(product), {"quantity": bad})
        assert response.status_code == 400
        assert 'aria-invalid="true"' in response.content.decode()
    assert not Order.objects.exists()


def test_a_tampered_form_key_is_refused_with_a_message(client, make_product, shopper, no_rate_limits):
    product = make_product()
    client.force_login(shopper)
    for key in ("x" * 65, "bad key with spaces"):
        response = client.post(buy_url(product), {"quantity": 1, "idempotency_key": key})
        assert response.status_code == 400
        assert 'data-outcome="invalid"' in response.content.decode()
    assert not Order.objects.exists()


def test_rate_limits_come_before_input_checks(client, make_product, shopper, settings):
    settings.RATE_LIMIT_PURCHASE_USER = "1/m"
    product = make_product()
    client.force_login(shopper)
    assert client.post(buy_url(product), {"quantity": "0"}).status_code == 400
    assert client.post(buy_url(product), {"quantity": "0"}).status_code == 429


@pytest.mark.django_db(transaction=True)
def test_busy_answer_is_shown_as_a_message(client, make_product, shopper, no_rate_limits, settings):
    """Hold the product's row lock in another connection; the form answers 503 busy, not a hang."""
    import threading

    from django.db import connection, transaction

    settings.LOCK_TIMEOUT_MS = 200
    product = make_product(stock=5)
    client.force_login(shopper)
    locked, release = threading.Event(), threading.Event()

    def hold_lock():
        with transaction.atomic():
            Product.objects.select_for_update().get(pk=product.pk)
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        locked.wait(10)
        response = client.post(buy_url(product), {"quantity": 1})
    finally:
        release.set()
        holder.join()
    assert response.status_code == 503
    assert 'data-outcome="busy"' in response.content.decode()
    assert response["Retry-After"] == "1"


def test_buy_form_needs_csrf(make_product, shopper, no_rate_limits):
    from django.test import Client

    product = make_product()
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(shopper)
    assert strict.post(buy_url(product), {"quantity": 1}).status_code == 403
    assert not Order.objects.exists()


def test_a_get_on_the_buy_address_goes_back_to_the_sale(client, make_product):
    """Enter in the address bar after a refused buy, or a phone restoring the tab (was a 405)."""
    product = make_product()
    response = client.get(buy_url(product))
    assert response.status_code == 302
    assert response["Location"] == detail_url(product)
    assert client.put(buy_url(product)).status_code == 405


