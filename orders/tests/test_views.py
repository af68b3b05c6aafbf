"""The shopper's order pages: own orders only, and the cancel button."""

import pytest
from django.urls import reverse

from orders.models import OrderStatus
from orders.services import cancel_order, purchase
from tests.invariants import assert_stock_reconciles

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(make_product, shopper):
    return purchase(user=shopper, product_id=make_product(stock=5, name="Green Mug").pk, quantity=2).order


def detail(order):
    return reverse("orders:detail", kwargs={"pk": order.pk})


def cancel(order):
    return reverse("orders:cancel", kwargs={"pk": order.pk})


@pytest.mark.parametrize("url", ["/orders/", "/orders/1/"])
def test_anonymous_visitors_are_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_anonymous_cancel_is_sent_to_login_and_changes_nothing(client, order):
    response = client.post(cancel(order))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    order.refresh_from_db()
    assert order.status == OrderStatus.CONFIRMED


def test_shopper_sees_own_orders_only(client, order, make_user, make_product):
    other = make_user()
    theirs = purchase(user=other, product_id=make_product(name="Secret Lamp").pk).order
    client.force_login(order.user)
    html = client.get("/orders/").content.decode()
    assert "Green Mug" in html and "Secret Lamp" not in html
    assert client.get(detail(order)).status_code == 200
    assert client.get(detail(theirs)).status_code == 404
    assert client.post(cancel(theirs)).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == OrderStatus.CONFIRMED


def test_staff_pages_show_their_own_orders_too(client, order, staff):
    client.force_login(staff)
    assert "Green Mug" not in client.get("/orders/").content.decode()
    assert client.get(detail(order)).status_code == 404  # staff use the admin for other people's orders


def test_cancel_puts_units_back(client, order):
    client.force_login(order.user)
    response = client.post(cancel(order), follow=True)
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    html = response.content.decode()
    assert f"Order #{order.pk} cancelled" in html
    assert "Cancel this order" not in html
    assert order.product.__class__.objects.get(pk=order.product_id).stock == 5
    assert_stock_reconciles(order.product_id)


def test_cancelling_twice_says_so(client, order):
    cancel_order(order=order)
    client.force_login(order.user)
    response = client.post(cancel(order), follow=True)
    assert "already cancelled" in response.content.decode()


def test_cancel_asks_once_and_only_a_post_cancels(client, order):
    """The order page links to a confirmation page (no JavaScript needed); a GET changes nothing."""
    client.force_login(order.user)
    page = client.get(detail(order)).content.decode()
    assert f'href="{cancel(order)}"' in page and "<form" not in page.split("order__facts")[1]
    asked = client.get(cancel(order))
    html = asked.content.decode()
    assert asked.status_code == 200
    assert f"Cancel order #{order.pk}?" in html and "Yes, cancel this order" in html and "No, keep it" in html
    assert f'action="{cancel(order)}"' in html and 'method="post"' in html
    order.refresh_from_db()
    assert order.status == OrderStatus.CONFIRMED
    assert client.put(cancel(order)).status_code == 405


def test_the_confirmation_of_a_cancelled_order_goes_back_to_it(client, order):
    cancel_order(order=order)
    client.force_login(order.user)
    assert client.get(cancel(order))["Location"] == detail(order)
