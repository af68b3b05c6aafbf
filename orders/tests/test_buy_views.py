"""The buy form on a sale page (orders.views.buy), through Django's test client (real DB and Redis)."""

from datetime import timedelta

import pytest
from django.urls import reverse

from orders.models import Order
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


def test_a_get_on_the_buy_address_goes_back_to_the_sale(client, make_product):
    """Enter in the address bar after a refused buy, or a phone restoring the tab (was a 405)."""
    product = make_product()
    response = client.get(buy_url(product))
    assert response.status_code == 302
    assert response["Location"] == detail_url(product)
    assert client.put(buy_url(product)).status_code == 405




def _form_key(html: str) -> str:
    return html.split('name="idempotency_key" value="')[1].split('"')[0]


def test_back_then_a_new_quantity_is_a_new_purchase_and_a_resubmit_is_not(client, make_product, shopper, no_rate_limits):
    """Issue 12.1: the page restored by Back still carries its old key; a new quantity must buy."""
    product = make_product(stock=10)
    client.force_login(shopper)
    key = _form_key(client.get(detail_url(product)).content.decode())
    first = client.post(buy_url(product), {"quantity": 1, "idempotency_key": key})
    again = client.post(buy_url(product), {"quantity": 1, "idempotency_key": key}, follow=True)  # a double click
    second = client.post(buy_url(product), {"quantity": 2, "idempotency_key": key}, follow=True)  # Back, then 2
    assert first.status_code == 302
    assert "nothing was bought twice" in again.content.decode()
    assert second.status_code == 200 and "confirmed: 2 ×" in second.content.decode()
    assert sorted(Order.objects.values_list("quantity", flat=True)) == [1, 2]
    assert_stock_reconciles(product.pk)


def test_every_rendering_of_the_sale_page_has_a_fresh_key_and_is_never_cached(client, make_product, shopper):
    product = make_product(stock=10)
    client.force_login(shopper)
    pages = [client.get(detail_url(product)) for _ in range(2)]
    assert _form_key(pages[0].content.decode()) != _form_key(pages[1].content.decode())
    assert pages[0]["Cache-Control"] == "no-store"  # Back re-asks the server: live stock, new key
    assert 'autocomplete="off"' in pages[0].content.decode()  # nor does the browser restore the old key


def test_a_refusal_comes_back_with_a_fresh_key_the_typed_quantity_and_focus_on_the_message(
    client, make_product, shopper, no_rate_limits
):
    product = make_product(stock=2)
    client.force_login(shopper)
    response = client.post(buy_url(product), {"quantity": 3, "idempotency_key": "old-key"})
    html = response.content.decode()
    assert response.status_code == 409
    assert _form_key(html) not in ("", "old-key")
    assert 'value="3"' in html
    alert = html.split('data-outcome="insufficient_stock"')[0].rsplit("<div", 1)[1]
    assert 'role="alert"' in alert and 'tabindex="-1"' in alert and "autofocus" in alert
    assert response["Cache-Control"] == "no-store"


def test_the_quantity_box_allows_only_what_this_shopper_may_still_buy(client, make_product, shopper, no_rate_limits):
    """Issue 12.2: min/max stop typos in the browser before they spend a rate-limit slot."""
    product = make_product(stock=50, max_per_user=3)
    client.force_login(shopper)
    html = client.get(detail_url(product)).content.decode()
    assert 'min="1" max="3"' in html and "You already have" not in html
    client.post(buy_url(product), {"quantity": 1, "idempotency_key": "a"})
    html = client.get(detail_url(product)).content.decode()
    assert 'min="1" max="2"' in html
    assert "You already have 1; you can buy 2 more." in html
    assert 'novalidate' not in html.split("data-buy-form")[1].split(">")[0]  # the browser checks min/max
    client.post(buy_url(product), {"quantity": 2, "idempotency_key": "b"})
    html = client.get(detail_url(product)).content.decode()
    assert "You already have 3, the most one shopper may buy." in html
    assert "Limit reached" in html and html.split("data-buy-button")[1].split(">")[0].strip().startswith("disabled")


def test_the_quantity_box_is_capped_by_the_stock(client, make_product, shopper):
    product = make_product(stock=4)
    client.force_login(shopper)
    assert 'min="1" max="4"' in client.get(detail_url(product)).content.decode()


def test_items_limited_to_one_have_no_quantity_box(client, make_product, shopper, no_rate_limits):
    product = make_product(stock=5, max_per_user=1)
    client.force_login(shopper)
    html = client.get(detail_url(product)).content.decode()
    assert 'id="id_quantity"' not in html
    assert '<input type="hidden" name="quantity" value="1">' in html and "One per shopper." in html
    assert client.post(buy_url(product), {"quantity": 1, "idempotency_key": "k"}).status_code == 302


def test_the_limit_sentence_never_says_you_have_zero(client, make_product, shopper, no_rate_limits):
    product = make_product(stock=9, max_per_user=2)
    client.force_login(shopper)
    html = client.post(buy_url(product), {"quantity": 3}).content.decode()
    assert "The limit is 2 per shopper; please ask for 2 or fewer." in html
    assert "you already have 0" not in html


def test_every_429_says_how_long_to_wait(client, make_product, shopper, settings):
    settings.RATE_LIMIT_PURCHASE_USER = "1/m"
    product = make_product(stock=50)
    client.force_login(shopper)
    client.post(buy_url(product), {"quantity": 1})
    limited = client.post(buy_url(product), {"quantity": 1})
    seconds = int(limited["Retry-After"])
    assert limited.status_code == 429
    assert f"Please wait {seconds} second" in limited.content.decode()


def test_ended_and_sold_out_sales_read_as_such(client, make_product, shopper):
    ended = make_product(stock=40, ends_in=-timedelta(minutes=5), name="Old Hat")
    sold_out = make_product(stock=0, name="Gone Socks")
    client.force_login(shopper)
    html = client.get(detail_url(ended)).content.decode()
    assert "This sale has ended; nothing more can be bought." in html
    assert "Sale ended" in html and "Sale ends" not in html
    assert "<span data-stock-live hidden>" in html  # not "40 of 40 left"
    assert "<span data-stock-ended>Sale ended</span>" in html
    form_tag = html.split("data-buy-form")[1].split(">")[0]
    assert form_tag.rstrip().endswith("hidden")  # no quantity, no button
    html = client.get(detail_url(sold_out)).content.decode()
    assert "Sold out · all" in html and 'id="id_quantity"' in html
    assert html.split("data-quantity-field")[1].split(">")[0].strip() == "hidden"
    listing = client.get("/").content.decode()
    assert "This sale has ended" in listing and "Sold out · all" in listing


def test_a_refused_buy_page_does_not_claim_to_be_my_orders(client, make_product, shopper, no_rate_limits):
    product = make_product(stock=0)
    client.force_login(shopper)
    html = client.post(buy_url(product), {"quantity": 1}).content.decode()
    assert 'href="/orders/" aria-current="page"' not in html
