"""/api/products/…: listing, detail, stock, staff create/edit/restock."""

from datetime import timedelta

import pytest
from django.utils import timezone

from products.models import Product
from tests.invariants import assert_stock_reconciles

PRODUCT_KEYS = {"id", "slug", "name", "description", "image_url", "price", "stock", "max_per_user",
                "sale_starts_at", "sale_ends_at", "status", "waiting_room", "admit_per_minute"}


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response.json()["code"] == code, response.json()
    return response.json()


def test_list_is_a_page_of_products(client_for, make_product):
    shown = make_product(name="Shown")
    page = client_for(None).get("/api/products/").json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert [p["id"] for p in page["results"]] == [shown.pk]
    assert set(page["results"][0]) == PRODUCT_KEYS
    assert client_for(None).get(f"/api/products/{shown.pk + 1}/").status_code == 404
    assert client_for(None).get(f"/api/products/{shown.pk + 1}/stock/").status_code == 404


@pytest.mark.parametrize(
    ("setup", "status"),
    [
        (dict(starts_in=timedelta(minutes=1)), "upcoming"),
        (dict(stock=3), "active"),
        (dict(stock=0), "sold_out"),
        (dict(stock=0, ends_in=-timedelta(minutes=1)), "ended"),
        (dict(stock=0, starts_in=timedelta(minutes=1)), "upcoming"),
    ],
)
def test_status_follows_the_contract(client_for, make_product, setup, status):
    product = make_product(**setup)
    assert client_for(None).get(f"/api/products/{product.pk}/").json()["status"] == status
    assert client_for(None).get(f"/api/products/{product.pk}/stock/").json()["status"] == status


def test_open_windows_and_no_limit_are_null(client_for, make_product):
    product = make_product(ends_in=None)
    Product.objects.filter(pk=product.pk).update(sale_starts_at=None)
    body = client_for(None).get(f"/api/products/{product.pk}/").json()
    assert (body["sale_starts_at"], body["sale_ends_at"], body["max_per_user"], body["image_url"]) == (None,) * 4
    assert body["status"] == "active"
    assert body["price"] == "9.99"


def test_stock_endpoint_is_tiny_and_never_cached(client_for, make_product):
    product = make_product(stock=7)
    response = client_for(None).get(f"/api/products/{product.pk}/stock/")
    assert response.status_code == 200
    assert response.json() == {"id": product.pk, "stock": 7, "status": "active"}
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize("path", ["/api/products/abc/", "/api/products/abc/stock/", "/api/products/1e3/"])
def test_non_integer_product_ids_are_400(client_for, path):
    assert_error(client_for(None).get(path), 400, "invalid")


def test_missing_product_is_404(client_for, db):
    assert_error(client_for(None).get("/api/products/424242/"), 404, "not_found")
    assert_error(client_for(None).get(f"/api/products/{10**25}/stock/"), 404, "not_found")


def _new_product_body(**overrides):
    now = timezone.now()
    body = {"name": "Glow Lamp", "price": "49.90", "stock": 12, "max_per_user": 2,
            "sale_starts_at": now.isoformat(), "sale_ends_at": (now + timedelta(days=1)).isoformat()}
    body.update(overrides)
    return body


def test_staff_create_product_derives_slug(client_for, staff):
    response = client_for(staff).post("/api/products/", _new_product_body(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "glow-lamp" and body["stock"] == 12 and body["description"] == ""
    again = client_for(staff).post("/api/products/", _new_product_body(), format="json").json()
    assert again["slug"] == "glow-lamp-2"
    product = Product.objects.get(pk=body["id"])
    assert product.units_received == 12
    assert_stock_reconciles(product.pk)


@pytest.mark.parametrize(
    "overrides",
    [
        {"price": "0"}, {"price": "-1"}, {"price": "abc"}, {"stock": -1}, {"stock": "5"}, {"max_per_user": 0},
        {"sale_ends_at": "2000-01-01T00:00:00Z"}, {"name": ""}, {"image_url": "not a url"}, {"units_received": 3},
        {"orders": []}, {"slug": "has spaces"}, {"sale_starts_at": "tomorrow"},
    ],
)
def test_create_rejects_bad_fields(client_for, staff, overrides):
    response = client_for(staff).post("/api/products/", _new_product_body(**overrides), format="json")
    body = assert_error(response, 400, "invalid")
    assert body["errors"]
    assert not Product.objects.exists()


def test_duplicate_explicit_slug_is_400(client_for, staff, make_product):
    make_product(slug="taken")
    body = assert_error(client_for(staff).post("/api/products/", _new_product_body(slug="taken"), format="json"),
                        400, "invalid")
    assert "slug" in body["errors"]


def test_shoppers_and_anonymous_cannot_write(client_for, shopper, make_product):
    product = make_product()
    for client, status, code in [(client_for(shopper), 403, "permission_denied"), (client_for(None), 401, "not_authenticated")]:
        assert_error(client.post("/api/products/", _new_product_body(), format="json"), status, code)
        assert_error(client.patch(f"/api/products/{product.pk}/", {"name": "x"}, format="json"), status, code)
        assert_error(client.post(f"/api/products/{product.pk}/restock/", {"quantity": 1}, format="json"), status, code)
    product.refresh_from_db()
    assert product.stock == 10


def test_staff_patch_edits_everything_but_stock(client_for, staff, make_product):
    product = make_product(stock=10)
    client = client_for(staff)
    response = client.patch(f"/api/products/{product.pk}/", {"name": "Renamed", "max_per_user": None, "price": "5.00"},
                            format="json")
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["max_per_user"], response.json()["price"]) == ("Renamed", None, "5.00")
    body = assert_error(client.patch(f"/api/products/{product.pk}/", {"stock": 99}, format="json"), 400, "invalid")
    assert "stock" in body["errors"]
    ends_before_start = {"sale_ends_at": (product.sale_starts_at - timedelta(hours=1)).isoformat()}
    assert_error(client.patch(f"/api/products/{product.pk}/", ends_before_start, format="json"), 400, "invalid")
    product.refresh_from_db()
    assert product.stock == 10


def test_blank_slug_on_patch_is_derived_so_the_shop_keeps_working(client_for, staff, make_product):
    product = make_product(name="Night Lamp", slug="old-slug")
    before = product.updated_at
    response = client_for(staff).patch(f"/api/products/{product.pk}/", {"slug": ""}, format="json")
    assert response.status_code == 200
    assert response.json()["slug"] == "night-lamp"
    product.refresh_from_db()
    assert product.updated_at > before
    assert client_for(None).get("/").status_code == 200
    assert client_for(None).get("/products/night-lamp/").status_code == 200


def test_put_and_delete_are_405(client_for, staff, make_product):
    product = make_product()
    assert_error(client_for(staff).put(f"/api/products/{product.pk}/", {}, format="json"), 405, "method_not_allowed")
    assert_error(client_for(staff).delete(f"/api/products/{product.pk}/"), 405, "method_not_allowed")


def test_restock_raises_stock_and_units_received(client_for, staff, make_product):
    product = make_product(stock=0)
    response = client_for(staff).post(f"/api/products/{product.pk}/restock/", {"quantity": 25}, format="json")
    assert response.status_code == 200
    assert response.json()["stock"] == 25 and response.json()["status"] == "active"
    product.refresh_from_db()
    assert product.units_received == 25
    assert_stock_reconciles(product.pk)


@pytest.mark.parametrize("body", [{}, {"quantity": 0}, {"quantity": -5}, {"quantity": "3"}, {"quantity": 10**12},
                                  {"quantity": 1, "extra": True}])
def test_restock_rejects_bad_quantities(client_for, staff, make_product, body):
    product = make_product(stock=3)
    assert_error(client_for(staff).post(f"/api/products/{product.pk}/restock/", body, format="json"), 400, "invalid")
    product.refresh_from_db()
    assert product.stock == 3
