"""/api/products/{id}/queue/ and the purchase's Admission-Pass: every code of section 8."""

from datetime import timedelta

import pytest
from django.core import signing
from django.utils import timezone

from orders.models import Order
from tests.invariants import assert_stock_reconciles
from waiting_room.passes import issue_pass, to_ms

QUEUE_KEYS = {"ticket", "position", "admitted", "pass", "pass_expires_at", "retry_after", "status"}


def queue_url(product_id) -> str:
    return f"/api/products/{product_id}/queue/"


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == code, response.json()


def buy(client, product_id, admission_pass=None, quantity=1):
    headers = {"Admission-Pass": admission_pass} if admission_pass is not None else {}
    return client.post("/api/orders/", {"product_id": product_id, "quantity": quantity}, format="json",
                       headers=headers)


@pytest.fixture
def open_line(line_product):
    """A waiting-room sale that started a moment ago, admitting plenty per minute."""

    def make(**fields):
        return line_product(starts_in=timedelta(seconds=-1), **{"rate": 6000, **fields})

    return make


@pytest.fixture
def admitted(client_for):
    """Join with a fresh client and return (client, body once admitted)."""

    def make(user, product):
        client = client_for(user)
        body = client.post(queue_url(product.pk)).json()
        assert body["admitted"], body
        return client, body

    return make


def test_first_join_is_201_then_200_with_the_same_ticket(line_product, shopper, client_for):
    product = line_product()
    client = client_for(shopper)
    first = client.post(queue_url(product.pk))
    assert first.status_code == 201
    body = first.json()
    assert set(body) == QUEUE_KEYS
    assert body["status"] == "upcoming" and not body["admitted"]
    assert body["pass"] is None and body["pass_expires_at"] is None
    assert isinstance(body["ticket"], str) and body["position"] == 0 and body["retry_after"] >= 1
    again = client.post(queue_url(product.pk))
    assert again.status_code == 200 and again.json()["ticket"] == body["ticket"]
    poll = client.get(queue_url(product.pk))
    assert poll.status_code == 200 and poll.json()["ticket"] == body["ticket"]
    assert poll["Cache-Control"] == "no-store"


def test_admitted_shopper_gets_a_pass_and_buys_with_it(open_line, shopper, admitted, no_rate_limits):
    product = open_line(stock=5)
    client, body = admitted(shopper, product)
    assert body["position"] == 0 and body["retry_after"] is None
    assert body["pass"] and body["pass_expires_at"]
    response = buy(client, product.pk, body["pass"])
    assert response.status_code == 201, response.content
    assert_stock_reconciles(product.pk)


def test_the_same_admission_always_gives_the_same_pass(open_line, shopper, admitted):
    product = open_line()
    client, body = admitted(shopper, product)
    again = client.get(queue_url(product.pk)).json()
    assert (again["pass"], again["pass_expires_at"]) == (body["pass"], body["pass_expires_at"])


def test_buying_without_a_pass_is_403_admission_required(open_line, shopper, client_for, no_rate_limits):
    product = open_line(stock=5)
    assert_error(buy(client_for(shopper), product.pk), 403, "admission_required")
    product.refresh_from_db()
    assert product.stock == 5 and not Order.objects.exists()


def test_waiting_but_not_admitted_cannot_buy(line_product, shopper, client_for, no_rate_limits):
    product = line_product(stock=5)
    client = client_for(shopper)
    assert client.post(queue_url(product.pk)).json()["pass"] is None
    assert_error(buy(client, product.pk, ""), 403, "admission_required")


@pytest.mark.parametrize("tamper", ["forged", "garbage", "expired", "other_shopper", "other_product", "huge"])
def test_bad_passes_are_403_admission_invalid_and_change_nothing(
    tamper, open_line, make_user, admitted, client_for, no_rate_limits
):
    product, other_product = open_line(stock=5), open_line(stock=5)
    shopper, other = make_user(), make_user()
    client = client_for(shopper)
    now_ms = to_ms(timezone.now())
    passes = {
        "forged": signing.Signer(key="not-our-secret", salt="waiting_room.admission_pass").sign_object(
            {"s": shopper.pk, "p": product.pk, "e": now_ms + 60_000}),
        "garbage": "eyJzIjoxfQ:nonsense",
        "expired": issue_pass(shopper_id=shopper.pk, product_id=product.pk, expires_ms=now_ms - 1),
        "other_shopper": admitted(other, product)[1]["pass"],
        "other_product": admitted(shopper, other_product)[1]["pass"],
        "huge": "x" * 10_000,
    }
    assert_error(buy(client, product.pk, passes[tamper]), 403, "admission_invalid")
    product.refresh_from_db()
    assert product.stock == 5 and not Order.objects.filter(product=product).exists()


def test_a_pass_never_lifts_the_per_shopper_limit_or_the_stock(open_line, make_user, admitted, no_rate_limits):
    product = open_line(stock=3, max_per_user=2)
    shopper = make_user()
    client, body = admitted(shopper, product)
    assert buy(client, product.pk, body["pass"], quantity=2).status_code == 201
    assert_error(buy(client, product.pk, body["pass"]), 409, "purchase_limit_reached")
    other_client, other_body = admitted(make_user(), product)
    assert_error(buy(other_client, product.pk, other_body["pass"], quantity=2), 409, "insufficient_stock")
    assert buy(other_client, product.pk, other_body["pass"]).status_code == 201
    assert_error(buy(other_client, product.pk, other_body["pass"]), 409, "sold_out")
    assert_stock_reconciles(product.pk)


def test_admission_is_checked_before_the_sale_window(line_product, shopper, client_for, no_rate_limits):
    """The contract's order: product exists, admission, sale window."""
    product = line_product()  # not started yet
    assert_error(buy(client_for(shopper), product.pk), 403, "admission_required")
    assert_error(buy(client_for(shopper), 999_999), 404, "not_found")


def test_plain_products_need_no_pass(make_product, shopper, client_for, no_rate_limits):
    product = make_product(stock=2)
    assert buy(client_for(shopper), product.pk).status_code == 201
    assert buy(client_for(shopper), product.pk, "anything").status_code == 201  # ignored, not checked


def test_idempotent_retry_replays_even_after_the_pass_expired(open_line, shopper, admitted, no_rate_limits):
    product = open_line(stock=5)
    client, body = admitted(shopper, product)
    first = client.post("/api/orders/", {"product_id": product.pk}, format="json",
                        headers={"Admission-Pass": body["pass"], "Idempotency-Key": "k1"})
    assert first.status_code == 201
    stale = issue_pass(shopper_id=shopper.pk, product_id=product.pk, expires_ms=to_ms(timezone.now()) - 1)
    retry = client.post("/api/orders/", {"product_id": product.pk}, format="json",
                        headers={"Admission-Pass": stale, "Idempotency-Key": "k1"})
    assert retry.status_code == 201 and retry.json()["id"] == first.json()["id"]
    assert Order.objects.filter(product=product).count() == 1


def test_unknown_product_is_404(shopper, client_for):
    client = client_for(shopper)
    assert_error(client.post(queue_url(999_999)), 404, "not_found")
    assert_error(client.get(queue_url(999_999)), 404, "not_found")
    assert_error(client.post(queue_url("abc")), 400, "invalid")
    assert_error(client.post(queue_url(2**70)), 404, "not_found")


def test_product_without_waiting_room_is_409_waiting_room_off(make_product, shopper, client_for):
    product = make_product()
    client = client_for(shopper)
    assert_error(client.post(queue_url(product.pk)), 409, "waiting_room_off")
    assert_error(client.get(queue_url(product.pk)), 409, "waiting_room_off")


def test_joining_an_ended_sale_is_409_sale_ended_and_polls_say_ended(line_product, shopper, client_for):
    product = line_product(starts_in=timedelta(hours=-2), ends_in=timedelta(hours=1))
    client = client_for(shopper)
    ticket = client.post(queue_url(product.pk)).json()["ticket"]
    product.sale_ends_at = timezone.now() - timedelta(seconds=1)
    product.save(update_fields=["sale_ends_at"])
    assert_error(client.post(queue_url(product.pk)), 409, "sale_ended")
    poll = client.get(queue_url(product.pk))
    assert poll.status_code == 200
    assert (poll.json()["ticket"], poll.json()["status"], poll.json()["retry_after"]) == (ticket, "ended", None)


def test_selling_out_closes_the_line(line_product, make_user, client_for, no_rate_limits):
    product = line_product(stock=1, rate=1, starts_in=timedelta(seconds=-1))
    first, second = make_user(), make_user()
    first_client, second_client = client_for(first), client_for(second)
    admission = first_client.post(queue_url(product.pk)).json()
    waiting = second_client.post(queue_url(product.pk)).json()
    assert admission["admitted"] and not waiting["admitted"]
    assert buy(first_client, product.pk, admission["pass"]).status_code == 201
    # Joins answer 409 sold_out, also for a shopper who already holds a ticket; polls say sold_out.
    assert_error(second_client.post(queue_url(product.pk)), 409, "sold_out")
    assert_error(client_for(make_user()).post(queue_url(product.pk)), 409, "sold_out")
    poll = second_client.get(queue_url(product.pk))
    assert poll.status_code == 200
    assert (poll.json()["status"], poll.json()["retry_after"], poll.json()["ticket"]) == (
        "sold_out", None, waiting["ticket"])


def test_polling_without_a_ticket_is_404(line_product, shopper, client_for):
    assert_error(client_for(shopper).get(queue_url(line_product().pk)), 404, "not_found")


def test_staff_get_403_and_anonymous_callers_401(line_product, staff, client_for):
    product = line_product()
    for method in ("post", "get"):
        assert_error(getattr(client_for(staff), method)(queue_url(product.pk)), 403, "permission_denied")
        assert_error(getattr(client_for(None), method)(queue_url(product.pk)), 401, "not_authenticated")


def test_other_methods_are_405(line_product, shopper, client_for):
    assert_error(client_for(shopper).delete(queue_url(line_product().pk)), 405, "method_not_allowed")


def test_staff_turn_the_waiting_room_on_and_set_the_rate(staff, client_for):
    client = client_for(staff)
    created = client.post("/api/products/", {"name": "Hot", "price": "5.00", "stock": 3, "waiting_room": True,
                                             "admit_per_minute": 30}, format="json")
    assert created.status_code == 201, created.content
    assert (created.json()["waiting_room"], created.json()["admit_per_minute"]) == (True, 30)
    pk = created.json()["id"]
    changed = client.patch(f"/api/products/{pk}/", {"admit_per_minute": 120, "waiting_room": False}, format="json")
    assert (changed.json()["waiting_room"], changed.json()["admit_per_minute"]) == (False, 120)
    plain = client.post("/api/products/", {"name": "Plain", "price": "5.00", "stock": 3}, format="json").json()
    assert (plain["waiting_room"], plain["admit_per_minute"]) == (False, 60)


@pytest.mark.parametrize("body", [{"admit_per_minute": 0}, {"admit_per_minute": -5}, {"admit_per_minute": "60"},
                                  {"admit_per_minute": 1.5}, {"waiting_room": "yes"}, {"waiting_room": 1},
                                  {"admit_per_minute": None}, {"admit_per_minute": 10**12}])
def test_bad_waiting_room_settings_are_400_invalid(body, staff, client_for, make_product):
    product = make_product()
    client = client_for(staff)
    response = client.patch(f"/api/products/{product.pk}/", body, format="json")
    assert_error(response, 400, "invalid")
    assert set(response.json()["errors"]) == set(body)
    assert_error(client.post("/api/products/", {"name": "X", "price": "1.00", "stock": 1, **body}, format="json"),
                 400, "invalid")
    product.refresh_from_db()
    assert (product.waiting_room, product.admit_per_minute) == (False, 60)


def test_shoppers_cannot_change_the_waiting_room(make_product, shopper, client_for):
    product = make_product()
    assert_error(client_for(shopper).patch(f"/api/products/{product.pk}/", {"waiting_room": True}, format="json"),
                 403, "permission_denied")
