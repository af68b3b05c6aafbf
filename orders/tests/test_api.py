"""POST/GET /api/orders/… : every answer and error code of the contract, over HTTP."""

import contextlib
from datetime import timedelta

import pytest

from orders.models import Order
from tests.concurrency import other_session
from tests.invariants import assert_stock_reconciles

ORDER_KEYS = {"id", "product_id", "product_name", "quantity", "unit_price", "total_price", "status",
              "created_at", "remaining_stock"}


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    return body


@pytest.fixture
def buyer(client_for, shopper, no_rate_limits):
    return client_for(shopper)


def test_purchase_answers_201_with_the_order(buyer, make_product, buy):
    product = make_product(stock=5, price="9.99")
    response = buy(buyer, product.pk, 2)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == ORDER_KEYS
    assert body["product_id"] == product.pk and body["product_name"] == product.name
    assert (body["quantity"], body["unit_price"], body["total_price"]) == (2, "9.99", "19.98")
    assert (body["status"], body["remaining_stock"]) == ("confirmed", 3)
    assert_stock_reconciles(product.pk)


def test_quantity_defaults_to_one(buyer, make_product, buy):
    product = make_product(stock=5)
    assert buy(buyer, product.pk).json()["quantity"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {},  # missing product_id
        {"product_id": "1"},
        {"product_id": 1.5},
        {"product_id": True},
        {"product_id": None},
        {"product_id": [1]},
        {"product_id": 10**30},
        {"product_id": -3},
        {"product_id": "PRODUCT", "quantity": 0},
        {"product_id": "PRODUCT", "quantity": 101},
        {"product_id": "PRODUCT", "quantity": -1},
        {"product_id": "PRODUCT", "quantity": "2"},
        {"product_id": "PRODUCT", "quantity": 2.0},
        {"product_id": "PRODUCT", "quantity": 10**40},
        {"product_id": "PRODUCT", "surprise": 1},
        {"product_id": "PRODUCT", "stock": 0},
    ],
)
def test_bad_purchase_bodies_are_400_invalid_and_move_no_stock(buyer, make_product, body):
    product = make_product(stock=5)
    body = {k: (product.pk if v == "PRODUCT" else v) for k, v in body.items()}
    response = buyer.post("/api/orders/", body, format="json")
    error = assert_error(response, 400, "invalid")
    assert error["errors"] and all(isinstance(m, list) for m in error["errors"].values())
    product.refresh_from_db()
    assert product.stock == 5 and not Order.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[1, 2]", b'"a string"', b"null", b'{"product_id": 1,}', b"\xff\xfe", b"1" * 5000],
)
def test_malformed_json_is_400_invalid(buyer, make_product, raw):
    make_product()
    response = buyer.post("/api/orders/", raw, content_type="application/json")
    assert_error(response, 400, "invalid")


def test_non_json_body_is_a_4xx_json_error(buyer, make_product):
    product = make_product()
    response = buyer.post("/api/orders/", {"product_id": product.pk})  # multipart form
    assert response.status_code == 415
    assert response.json()["code"] == "invalid"


def test_unservable_accept_header_is_406_with_the_contracts_code(buyer, make_product):
    product = make_product()
    response = buyer.get(f"/api/products/{product.pk}/", HTTP_ACCEPT="application/xml")
    assert response.status_code == 406
    assert response.json()["code"] == "invalid"


def test_oversized_body_is_refused_without_a_500(buyer, make_product):
    product = make_product(stock=5)
    padding = "x" * (300 * 1024)
    response = buyer.post("/api/orders/", f'{{"product_id": {product.pk}, "pad": "{padding}"}}',
                          content_type="application/json")
    assert 400 <= response.status_code < 500
    assert response.json()["code"] == "invalid"
    product.refresh_from_db()
    assert product.stock == 5


def test_anonymous_and_bad_token_are_401(client_for, make_product, buy):
    product = make_product()
    anonymous = client_for(None)
    response = buy(anonymous, product.pk)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Token")
    bad = client_for(None)
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_error(buy(bad, product.pk), 401, "not_authenticated")
    assert_error(bad.get("/api/orders/"), 401, "not_authenticated")


def test_unknown_product_is_404(buyer, buy):
    assert_error(buy(buyer, 987654321), 404, "not_found")


@pytest.mark.parametrize(
    ("setup", "quantity", "code"),
    [
        (dict(starts_in=timedelta(hours=1)), 1, "sale_not_started"),
        (dict(ends_in=-timedelta(seconds=1)), 1, "sale_ended"),
        (dict(stock=0), 1, "sold_out"),
        (dict(stock=2), 3, "insufficient_stock"),
        (dict(stock=10, max_per_user=2), 3, "purchase_limit_reached"),
    ],
)
def test_sale_refusals_are_409_with_their_code(buyer, make_product, setup, quantity, code, buy):
    product = make_product(**setup)
    assert_error(buy(buyer, product.pk, quantity), 409, code)
    assert not Order.objects.exists()


def test_idempotency_key_replays_and_rejects_reuse(buyer, make_product, buy):
    product = make_product(stock=5)
    first = buy(buyer, product.pk, 1, **{"Idempotency-Key": "order-1"})
    again = buy(buyer, product.pk, 1, **{"Idempotency-Key": "order-1"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert_error(buy(buyer, product.pk, 2, **{"Idempotency-Key": "order-1"}), 422, "idempotency_key_reused")
    assert Order.objects.count() == 1
    assert_error(buy(buyer, product.pk, 1, **{"Idempotency-Key": ""}), 400, "invalid")


@pytest.mark.django_db(transaction=True)
def test_key_still_in_flight_is_409(client_for, shopper, make_product, no_rate_limits, buy):
    product = make_product(stock=5)
    with _advisory_lock_held(f"order-key:{shopper.pk}:busy-key"):
        response = buy(client_for(shopper), product.pk, 1, **{"Idempotency-Key": "busy-key"})
    assert_error(response, 409, "idempotency_key_in_use")
    assert int(response["Retry-After"]) >= 1
    assert buy(client_for(shopper), product.pk, 1, **{"Idempotency-Key": "busy-key"}).status_code == 201


@pytest.mark.django_db(transaction=True)
def test_row_lock_timeout_is_503_busy_and_changes_nothing(client_for, shopper, make_product, no_rate_limits, settings,
                                                          row_locked_elsewhere, buy):
    settings.LOCK_TIMEOUT_MS = 150
    product = make_product(stock=5)
    with row_locked_elsewhere(product.pk):
        response = buy(client_for(shopper), product.pk)
    assert_error(response, 503, "busy")
    assert int(response["Retry-After"]) >= 1
    product.refresh_from_db()
    assert product.stock == 5 and not Order.objects.exists()


def test_rate_limit_per_shopper_is_429_with_retry_after(client_for, shopper, make_product, settings, buy):
    settings.RATE_LIMIT_PURCHASE_USER = "2/m"
    settings.RATE_LIMIT_PURCHASE_IP = None
    product = make_product(stock=50)
    client = client_for(shopper)
    assert buy(client, product.pk).status_code == 201
    assert buy(client, product.pk).status_code == 201
    response = buy(client, product.pk)
    assert_error(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 60
    # The limit is per shopper: another shopper from the same address still buys.
    from django.contrib.auth import get_user_model

    other = get_user_model().objects.create_user("other-shopper", password="x-pass-123")
    assert buy(client_for(other), product.pk).status_code == 201


def test_rate_limit_per_ip_covers_all_shoppers(client_for, make_user, make_product, settings, buy):
    settings.RATE_LIMIT_PURCHASE_USER = None
    settings.RATE_LIMIT_PURCHASE_IP = "3/m"
    product = make_product(stock=50)
    answers = [buy(client_for(make_user()), product.pk).status_code for _ in range(5)]
    assert answers == [201, 201, 201, 429, 429]


def test_rate_limit_comes_before_input_checks(client_for, shopper, settings):
    settings.RATE_LIMIT_PURCHASE_USER = "1/m"
    client = client_for(shopper)
    assert_error(client.post("/api/orders/", {"product_id": "x"}, format="json"), 400, "invalid")
    assert_error(client.post("/api/orders/", {"product_id": "x"}, format="json"), 429, "rate_limited")


def test_spoofed_forwarded_for_does_not_dodge_the_ip_limit(client_for, make_user, make_product, settings, buy):
    settings.RATE_LIMIT_PURCHASE_USER = None
    settings.RATE_LIMIT_PURCHASE_IP = "2/m"
    product = make_product(stock=50)
    answers = [
        buy(client_for(make_user()), product.pk, **{"X-Forwarded-For": f"10.0.0.{n}"}).status_code for n in range(4)
    ]
    assert answers == [201, 201, 429, 429]


def test_orders_list_is_own_newest_first_and_paginated(client_for, make_user, make_product, no_rate_limits, buy):
    product = make_product(stock=50)
    me, someone = make_user(), make_user()
    mine = [buy(client_for(me), product.pk).json()["id"] for _ in range(3)]
    buy(client_for(someone), product.pk)
    page = client_for(me).get("/api/orders/").json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert page["count"] == 3
    assert [o["id"] for o in page["results"]] == mine[::-1]
    small = client_for(me).get("/api/orders/?page_size=2").json()
    assert len(small["results"]) == 2 and small["next"]


def test_staff_see_all_orders_and_filter_them(client_for, make_user, staff, make_product, no_rate_limits, buy):
    one, two = make_product(stock=20), make_product(stock=20)
    alice, bob = make_user("alice-f"), make_user("bob-f")
    buy(client_for(alice), one.pk)
    buy(client_for(bob), two.pk)
    cancelled = buy(client_for(bob), one.pk).json()["id"]
    client_for(bob).post(f"/api/orders/{cancelled}/cancel/")
    admin = client_for(staff)
    assert admin.get("/api/orders/").json()["count"] == 3
    assert admin.get(f"/api/orders/?product={one.pk}").json()["count"] == 2
    assert admin.get("/api/orders/?user=bob-f").json()["count"] == 2
    assert admin.get("/api/orders/?status=cancelled").json()["count"] == 1
    assert admin.get(f"/api/orders/?product={one.pk}&user=bob-f&status=confirmed").json()["count"] == 0
    assert_error(admin.get("/api/orders/?product=abc"), 400, "invalid")
    assert_error(admin.get("/api/orders/?status=lost"), 400, "invalid")
    # A shopper's filters cannot widen what they see.
    assert client_for(alice).get("/api/orders/?user=bob-f").json()["count"] == 1


def test_another_shoppers_order_is_404(client_for, make_user, make_product, no_rate_limits, buy):
    product = make_product()
    owner, stranger = make_user(), make_user()
    order_id = buy(client_for(owner), product.pk).json()["id"]
    assert client_for(owner).get(f"/api/orders/{order_id}/").status_code == 200
    assert_error(client_for(stranger).get(f"/api/orders/{order_id}/"), 404, "not_found")
    assert_error(client_for(stranger).post(f"/api/orders/{order_id}/cancel/"), 404, "not_found")
    assert Order.objects.get(pk=order_id).status == "confirmed"


def test_cancel_by_owner_and_by_staff(client_for, shopper, staff, make_product, no_rate_limits, buy):
    product = make_product(stock=5)
    owner = client_for(shopper)
    first = buy(owner, product.pk, 2).json()["id"]
    second = buy(owner, product.pk, 1).json()["id"]
    response = owner.post(f"/api/orders/{first}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert_error(owner.post(f"/api/orders/{first}/cancel/"), 409, "already_cancelled")
    assert client_for(staff).post(f"/api/orders/{second}/cancel/").json()["status"] == "cancelled"
    product.refresh_from_db()
    assert product.stock == 5
    assert_stock_reconciles(product.pk)


@pytest.mark.parametrize("path", ["/api/orders/abc/", "/api/orders/1.5/cancel/", "/api/orders/-1/"])
def test_non_integer_order_ids_are_400(buyer, path):
    method = buyer.post if path.endswith("cancel/") else buyer.get
    assert_error(method(path), 400, "invalid")


def test_huge_order_id_is_404(buyer):
    assert_error(buyer.get(f"/api/orders/{10**30}/"), 404, "not_found")


def test_wrong_methods_are_405(buyer):
    assert_error(buyer.delete("/api/orders/"), 405, "method_not_allowed")
    assert_error(buyer.put("/api/orders/", {}, format="json"), 405, "method_not_allowed")
    assert_error(buyer.get("/api/orders/1/cancel/"), 405, "method_not_allowed")


def test_unknown_api_path_is_json_404(buyer):
    assert_error(buyer.get("/api/nothing-here/"), 404, "not_found")


@contextlib.contextmanager
def _advisory_lock_held(name: str):
    with other_session() as other:
        other.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [name])
        try:
            yield
        finally:
            other.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [name])


def test_the_purchase_answer_is_the_order_serializer_s_object(buyer, make_product, buy):
    from orders.api import order_answer
    from orders.models import Order
    from orders.serializers import OrderSerializer
    from orders.services import cancel_order

    product = make_product(stock=5, price="12.50")
    created = buy(buyer, product.pk, 2)
    assert created.status_code == 201
    order = Order.objects.get(pk=created.json()["id"])
    assert created.json() == OrderSerializer(order).data == order_answer(order)
    cancelled = cancel_order(order=order)
    assert order_answer(cancelled) == OrderSerializer(cancelled).data
