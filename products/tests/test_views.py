"""The shopper's sale pages, through Django's test client (real DB and Redis)."""

from datetime import timedelta

import pytest
from django.urls import reverse

from orders.services import purchase
from products.models import Product

pytestmark = pytest.mark.django_db


def detail_url(product):
    return reverse("products:detail", kwargs={"slug": product.slug})


def test_sale_list_shows_shop_products_and_hides_lab_ones(client, make_product):
    on_sale = make_product(name="Red Kettle", stock=7)
    upcoming = make_product(name="Blue Lamp", starts_in=timedelta(hours=2))
    lab = make_product(name="Lab Scratch")
    Product.objects.filter(pk=lab.pk).update(is_lab=True)

    response = client.get("/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Red Kettle" in html and "Blue Lamp" in html
    assert "Lab Scratch" not in html
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


def test_unknown_and_lab_products_are_404(client, make_product):
    lab = make_product()
    Product.objects.filter(pk=lab.pk).update(is_lab=True)
    assert client.get(detail_url(lab)).status_code == 404
    assert client.get("/products/no-such-thing/").status_code == 404


def test_stock_shown_is_the_stock_left(client, make_product, shopper):
    product = make_product(stock=4)
    purchase(user=shopper, product_id=product.pk, quantity=3)
    assert "<strong data-stock>1</strong>" in client.get(detail_url(product)).content.decode()
