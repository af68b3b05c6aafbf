"""The shopper's sale pages and the buy form, through Django's test client (real DB and Redis)."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse

from orders.models import Order
from orders.services import purchase
from tests.invariants import assert_stock_reconciles

pytestmark = pytest.mark.django_db


def buy_url(product):
    return reverse("products:buy", kwargs={"slug": product.slug})


def detail_url(product):
    return reverse("products:detail", kwargs={"slug": product.slug})


def test_sale_list_shows_the_shop_products(client, make_product):
    on_sale = make_product(name="Red Kettle", stock=7)
    upcoming = make_product(name="Blue Lamp", starts_in=timedelta(hours=2))

    response = client.get("/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Red Kettle" in html and "Blue Lamp" in html
    assert html.index("Red Kettle") < html.index("Blue Lamp")  # open sales first
    assert 'data-countdown datetime="' in html
    assert on_sale.slug in html and upcoming.slug in html


def test_product_page_has_live_stock_hooks_and_a_csrf_protected_form(client, make_product):
    product = make_product(stock=12, max_per_user=3)
    response = client.get(detail_url(product))
    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-stock-url="/api/products/{product.pk}/stock/"' in html
    assert '<strong data-stock>12</strong>' in html
    assert "csrfmiddlewaretoken" in html
    assert 'max="3"' in html  # quantity capped by the per-shopper limit
    assert "Buy now" in html


def test_upcoming_product_shows_the_countdown_and_a_disabled_button(client, make_product):
    product = make_product(starts_in=timedelta(minutes=5))
    html = client.get(detail_url(product)).content.decode()
    assert "Sale opens in" in html
    assert "Not open yet" in html
    assert 'http-equiv="refresh"' in html  # without JavaScript the page reloads as the sale opens


def test_unknown_products_are_404(client):
    assert client.get("/products/no-such-thing/").status_code == 404


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
def test_busy_answer_is_shown_as_a_message(client, make_product, shopper, no_rate_limits, settings,
                                           row_locked_elsewhere):
    """Hold the product's row lock in another connection; the form answers 503 busy, not a hang."""
    settings.LOCK_TIMEOUT_MS = 200
    product = make_product(stock=5)
    client.force_login(shopper)
    with row_locked_elsewhere(product.pk):
        response = client.post(buy_url(product), {"quantity": 1})
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


def test_get_on_buy_is_not_allowed(client, make_product):
    assert client.get(buy_url(make_product())).status_code == 405


def test_stock_shown_is_the_stock_left(client, make_product, shopper):
    product = make_product(stock=4)
    purchase(user=shopper, product_id=product.pk, quantity=3)
    assert "<strong data-stock>1</strong>" in client.get(detail_url(product)).content.decode()


def test_the_page_hands_sale_js_the_servers_words(client, make_product):
    """sale.js switches the badge and the button between these; it never words a status itself."""
    import html
    import re

    from products.templatetags.shop import BUTTON_LABELS, STATUS_LABELS

    page = client.get(detail_url(make_product(stock=0))).content.decode()
    labels = json.loads(html.unescape(re.search(r'data-labels="([^"]*)"', page).group(1)))
    assert labels == {"badge": STATUS_LABELS, "button": BUTTON_LABELS}
    assert "<span data-buy-label>Sold out</span>" in page
