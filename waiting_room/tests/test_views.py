"""The shopper's pages: "join the line" on the product page, the waiting page, the buy form with the pass."""

import re
from datetime import timedelta

import pytest
from django.test import Client

from orders.models import Order
from waiting_room.services import join_line


@pytest.fixture
def browser_for():
    def make(user=None):
        client = Client()
        if user is not None:
            client.force_login(user)
        return client

    return make


def line_url(product):
    return f"/products/{product.slug}/line/"


def test_product_page_offers_to_join_the_line(line_product, browser_for, shopper):
    product = line_product()
    html = browser_for(shopper).get(f"/products/{product.slug}/").content.decode()
    assert "data-line-panel" in html and "Join the line" in html
    assert f'action="{line_url(product)}"' in html


def test_product_page_without_waiting_room_has_no_line(make_product, browser_for, shopper):
    html = browser_for(shopper).get(f"/products/{make_product().slug}/").content.decode()
    assert "data-line-panel" not in html


def test_joining_redirects_to_the_waiting_page_with_position_and_refresh(line_product, browser_for, make_user, at):
    product = line_product(rate=1, starts_in=timedelta(seconds=-1))
    join_line(user=make_user(), product_id=product.pk)  # takes the one place admitted so far
    shopper = make_user()
    client = browser_for(shopper)
    response = client.post(line_url(product))
    assert response.status_code == 302 and response["Location"] == line_url(product)
    page = client.get(line_url(product))
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-line-position>0<' in html  # the admitted ticket is not counted as ahead
    assert "about 1 min" in html or "under a minute" in html
    refresh = re.search(r'<noscript><meta http-equiv="refresh" content="(\d+)"></noscript>', html)
    assert refresh and 1 <= int(refresh.group(1)) <= 30
    assert "data-line-buy-form" not in html


def test_admitted_shopper_sees_the_buy_form_carrying_the_pass_and_buys(line_product, browser_for, shopper,
                                                                       no_rate_limits):
    product = line_product(rate=600, starts_in=timedelta(seconds=-1), stock=3)
    client = browser_for(shopper)
    client.post(line_url(product))
    html = client.get(line_url(product)).content.decode()
    assert "data-line-buy-form" in html and "refresh" not in html
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))
    assert fields["admission_pass"]
    response = client.post(f"/products/{product.slug}/buy/", {"quantity": 1, **fields})
    assert response.status_code == 302
    assert Order.objects.filter(product=product, user=shopper).count() == 1


def test_buying_from_the_product_page_without_a_pass_says_join_the_line(line_product, browser_for, shopper,
                                                                       no_rate_limits):
    product = line_product(starts_in=timedelta(seconds=-1), stock=3)
    response = browser_for(shopper).post(f"/products/{product.slug}/buy/", {"quantity": 1})
    assert response.status_code == 403
    assert 'data-outcome="admission_required"' in response.content.decode()
    assert not Order.objects.exists()


def test_waiting_page_without_a_ticket_offers_to_join(line_product, browser_for, shopper):
    html = browser_for(shopper).get(line_url(line_product())).content.decode()
    assert "You are not in this line yet" in html and "data-join-line" in html


def test_a_closed_line_says_so(line_product, browser_for, shopper):
    product = line_product(starts_in=timedelta(seconds=-1))
    client = browser_for(shopper)
    client.post(line_url(product))
    product.stock = 0
    product.save(update_fields=["stock"])
    assert "this sale is sold out" in client.get(line_url(product)).content.decode()
    joined_late = client.post(line_url(product))
    assert joined_late.status_code == 409 and 'data-outcome="sold_out"' in joined_late.content.decode()


def test_anonymous_shoppers_log_in_first_staff_are_refused(line_product, browser_for, staff):
    product = line_product()
    anonymous = browser_for().get(line_url(product))
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    assert browser_for(staff).get(line_url(product)).status_code == 403
    assert browser_for(staff).post(line_url(product)).status_code == 403


def test_no_waiting_room_sends_back_to_the_product(make_product, browser_for, shopper):
    product = make_product()
    response = browser_for(shopper).get(line_url(product))
    assert response.status_code == 302 and response["Location"] == f"/products/{product.slug}/"
    assert browser_for(shopper).get("/products/no-such-sale/line/").status_code == 404
