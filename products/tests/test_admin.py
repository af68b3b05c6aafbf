"""The product admin: live numbers in one query, stock moved only by the restock action."""

from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.utils import timezone

from orders.services import cancel_order, purchase
from products.models import Product
from tests.invariants import assert_stock_reconciles

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/products/product/"



def test_list_shows_units_sold_without_n_plus_1(admin_client, make_product, make_user,
                                                              django_assert_max_num_queries):
    for n in range(3):
        product = make_product(name=f"Thing {n}", price="10.00", stock=20)
        purchase(user=make_user(), product_id=product.pk, quantity=2)
        cancel_order(order=purchase(user=make_user(), product_id=product.pk, quantity=5).order)

    admin_client.get(CHANGELIST)  # warm the session and content types
    with django_assert_max_num_queries(12) as few:
        response = admin_client.get(CHANGELIST)
    baseline = len(few.captured_queries)
    for n in range(3, 9):
        make_product(name=f"Thing {n}")
    with django_assert_max_num_queries(baseline):  # more products, no more queries
        more = admin_client.get(CHANGELIST)

    html = response.content.decode()
    assert response.status_code == 200 and more.status_code == 200
    assert "Thing 0" in html and "Lab only" not in html
    row = html[html.index("Thing 0"):]
    assert ">2<" in row.split("</tr>")[0]  # units sold: the cancelled 5 do not count
    assert "10.00" in row.split("</tr>")[0]  # the price (revenue per sale is on the dashboard now)


def test_status_filter_and_search(admin_client, make_product):
    make_product(name="Soon Thing", starts_in=timedelta(hours=1))
    make_product(name="Open Thing")
    html = admin_client.get(CHANGELIST + "?status=upcoming").content.decode()
    assert "Soon Thing" in html and "Open Thing" not in html
    html = admin_client.get(CHANGELIST + "?q=open").content.decode()
    assert "Open Thing" in html and "Soon Thing" not in html


def test_change_form_edits_window_and_limit_but_not_stock(admin_client, make_product):
    product = make_product(name="Edit Me", stock=10)
    url = f"/admin/products/product/{product.pk}/change/"
    form = admin_client.get(url).content.decode()
    assert 'name="stock"' not in form  # read-only
    starts = timezone.now().replace(microsecond=0) + timedelta(days=1)
    response = admin_client.post(url, {
        "name": "Edit Me", "slug": product.slug, "description": "", "image_url": "", "price": "9.99",
        "sale_starts_at_0": starts.strftime("%Y-%m-%d"), "sale_starts_at_1": starts.strftime("%H:%M:%S"),
        "sale_ends_at_0": (starts + timedelta(days=1)).strftime("%Y-%m-%d"),
        "sale_ends_at_1": starts.strftime("%H:%M:%S"),
        "max_per_user": "2", "stock": "999999", "admit_per_minute": "60",  # the form's initial value, as a browser posts it
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    product.refresh_from_db()
    assert (product.max_per_user, product.sale_starts_at, product.stock) == (2, starts, 10)


def test_add_form_creates_through_the_service(admin_client):
    response = admin_client.post("/admin/products/product/add/", {
        "name": "Brand New", "slug": "", "description": "", "image_url": "", "price": "5.00", "stock": "30",
        "max_per_user": "", "sale_starts_at_0": "", "sale_starts_at_1": "", "sale_ends_at_0": "", "sale_ends_at_1": "",
        "admit_per_minute": "60",  # the form's initial value, as a browser posts it
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    product = Product.objects.get(name="Brand New")
    assert (product.slug, product.stock, product.units_received) == ("brand-new", 30, 30)


def test_restock_action_asks_for_a_quantity_then_restocks(admin_client, make_product, shopper):
    first, second = make_product(stock=1), make_product(stock=0)
    purchase(user=shopper, product_id=first.pk)
    chosen = {"action": "restock_products", ACTION_CHECKBOX_NAME: [first.pk, second.pk]}

    prompt = admin_client.post(CHANGELIST, chosen)
    assert prompt.status_code == 200 and 'name="quantity"' in prompt.content.decode()
    refused = admin_client.post(CHANGELIST, {**chosen, "apply": "1", "quantity": "0"})
    assert refused.status_code == 200
    done = admin_client.post(CHANGELIST, {**chosen, "apply": "1", "quantity": "5"})

    assert done.status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.stock, first.units_received, second.stock, second.units_received) == (5, 6, 5, 5)
    assert_stock_reconciles(first.pk)


def test_products_cannot_be_deleted_in_the_admin(admin_client, make_product):
    product = make_product()
    assert admin_client.get(f"/admin/products/product/{product.pk}/delete/").status_code == 403
