"""The order admin: read-only, filterable, searchable; cancel only through the action."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from orders.models import OrderStatus
from orders.services import cancel_order, purchase
from tests.invariants import assert_stock_reconciles

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/orders/order/"



@pytest.fixture
def orders(make_product, make_user):
    product = make_product(stock=10, name="Teapot")
    gina, hank = make_user("gina"), make_user("hank")
    return [purchase(user=gina, product_id=product.pk).order, purchase(user=hank, product_id=product.pk, quantity=2).order]


def test_list_search_and_filters(admin_client, orders):
    cancel_order(order=orders[1])
    html = admin_client.get(CHANGELIST + "?q=gina").content.decode()
    assert ">gina<" in html and ">hank<" not in html
    html = admin_client.get(CHANGELIST + "?status__exact=cancelled").content.decode()
    assert ">hank<" in html and ">gina<" not in html
    assert admin_client.get(CHANGELIST + f"?product__id__exact={orders[0].product_id}").status_code == 200
    day = orders[0].created_at
    assert admin_client.get(CHANGELIST + f"?created_at__year={day.year}&created_at__month={day.month}").status_code == 200


def test_orders_cannot_be_added_changed_or_deleted(admin_client, orders):
    order = orders[0]
    assert admin_client.get(CHANGELIST + "add/").status_code == 403
    assert admin_client.get(f"{CHANGELIST}{order.pk}/delete/").status_code == 403
    view = admin_client.get(f"{CHANGELIST}{order.pk}/change/")
    assert view.status_code == 200 and 'name="quantity"' not in view.content.decode()
    admin_client.post(f"{CHANGELIST}{order.pk}/change/", {"quantity": "50", "status": "cancelled"})
    order.refresh_from_db()
    assert (order.quantity, order.status) == (1, OrderStatus.CONFIRMED)


def test_cancel_action_goes_through_the_service(admin_client, orders):
    cancel_order(order=orders[0])  # already cancelled: reported, not an error
    asked = admin_client.post(CHANGELIST, {"action": "cancel_orders", ACTION_CHECKBOX_NAME: [o.pk for o in orders]})
    assert asked.status_code == 200 and "Yes, cancel 1 order" in asked.content.decode()
    orders[1].refresh_from_db()
    assert orders[1].status == OrderStatus.CONFIRMED  # asking changed nothing
    response = admin_client.post(CHANGELIST, {
        "action": "cancel_orders", ACTION_CHECKBOX_NAME: [o.pk for o in orders], "confirm": "1",
    }, follow=True)
    assert response.status_code == 200
    assert "Cancelled 1 order(s). 1 were already cancelled." in response.content.decode()
    for order in orders:
        order.refresh_from_db()
        assert order.status == OrderStatus.CANCELLED
    assert_stock_reconciles(orders[0].product_id)
