"""The shopper's sale pages, through Django's test client (real DB and Redis)."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse

from orders.services import purchase

pytestmark = pytest.mark.django_db


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


def test_stock_shown_is_the_stock_left(client, make_product, shopper):
    product = make_product(stock=4)
    purchase(user=shopper, product_id=product.pk, quantity=3)
    assert "<strong data-stock>1</strong>" in client.get(detail_url(product)).content.decode()


def test_the_sale_list_polls_one_url_for_all_its_cards(client, make_product):
    products = [make_product(stock=5), make_product(starts_in=timedelta(minutes=3))]
    html = client.get("/").content.decode()
    assert 'data-stock-url="/api/products/stock/"' in html
    for product in products:
        assert f'data-card="{product.pk}"' in html


def test_bulk_stock_read_is_one_query_for_all_cards(client, make_product, django_assert_num_queries):
    on_sale, sold_out = make_product(stock=5), make_product(stock=0)
    soon = make_product(starts_in=timedelta(minutes=3))
    ids = f"{on_sale.pk},{sold_out.pk},{soon.pk},999999999"
    with django_assert_num_queries(1):
        response = client.get(f"/api/products/stock/?ids={ids}")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {"results": [
        {"id": on_sale.pk, "stock": 5, "status": "active"},
        {"id": sold_out.pk, "stock": 0, "status": "sold_out"},
        {"id": soon.pk, "stock": 10, "status": "upcoming"},
    ]}  # unknown ids are simply left out


@pytest.mark.parametrize("query", ["", "?ids=", "?ids=a,b", "?ids=1,-2", "?ids=" + ",".join(["1"] * 101)])
def test_bulk_stock_read_refuses_bad_ids_as_json(client, db, query):
    response = client.get(f"/api/products/stock/{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_bulk_stock_read_shares_the_micro_cache(client, make_product, settings, django_assert_num_queries):
    from products import selectors

    settings.STOCK_READ_CACHE_MS = 250
    selectors._recent_levels.clear()
    first, second = make_product(stock=3), make_product(stock=4)
    with django_assert_num_queries(1):
        client.get(f"/api/products/stock/?ids={first.pk},{second.pk}")
        client.get(f"/api/products/stock/?ids={first.pk},{second.pk}")  # served from this process's cache
    selectors._recent_levels.clear()


def test_times_carry_utc_in_the_markup_for_the_local_clock(client, make_product):
    product = make_product()
    html = client.get(detail_url(product)).content.decode()
    ends = product.sale_ends_at.strftime("%Y-%m-%dT%H:%M:%S")
    assert f'<time datetime="{ends}' in html and "data-local-time" in html and " UTC</time>" in html


def test_products_never_import_orders_and_html_views_never_the_api_errors():
    """Issue 10.4: dependencies point one way (orders -> products)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]

    def imports(path: Path) -> set[str]:
        tree = ast.parse(path.read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        return names

    for path in (root / "products").rglob("*.py"):
        if "tests" in path.parts or "migrations" in path.parts:
            continue
        assert not any(name == "orders" or name.startswith("orders.") for name in imports(path)), path
    for view in ["products/views.py", "orders/views.py", "dashboard/views.py", "dashboard/race_lab_views.py",
                 "flashsale/accounts.py"]:
        assert "flashsale.api_errors" not in imports(root / view), view


def test_the_page_hands_sale_js_the_servers_words(client, make_product):
    """sale.js switches the badge and the button between these; it never words a status itself."""
    import html
    import re

    from products.templatetags.shop import BUTTON_LABELS, STATUS_LABELS

    page = client.get(detail_url(make_product(stock=0))).content.decode()
    labels = json.loads(html.unescape(re.search(r'data-labels="([^"]*)"', page).group(1)))
    assert labels == {"badge": STATUS_LABELS, "button": BUTTON_LABELS}
