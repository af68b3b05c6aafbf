"""Who may see the staff numbers: anonymous -> login (or 401), shoppers -> 403, staff -> data."""

import pytest

pytestmark = pytest.mark.django_db


def test_dashboard_sends_anonymous_visitors_to_login(client):
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/dashboard/"


def test_dashboard_refuses_shoppers(client, shopper, make_product):
    make_product(name="Hidden Numbers")
    client.force_login(shopper)
    response = client.get("/dashboard/")
    assert response.status_code == 403
    assert "Hidden Numbers" not in response.content.decode()


def test_dashboard_shows_staff_the_numbers(client, staff):
    client.force_login(staff)
    response = client.get("/dashboard/?days=30")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-chart="revenue-by-day"' in html
    assert "data-query-time" in html


def test_dashboard_bad_filter_is_a_400_with_a_message(client, staff):
    client.force_login(staff)
    assert client.get("/dashboard/?days=0").status_code == 400
    assert client.get("/dashboard/?product=999999").status_code == 404


def test_stats_api_permissions(client_for, shopper, staff):
    assert client_for(None).get("/api/stats/").status_code == 401
    denied = client_for(shopper).get("/api/stats/")
    assert denied.status_code == 403 and denied.json()["code"] == "permission_denied"
    assert client_for(staff).get("/api/stats/").status_code == 200


def test_stats_api_validates_its_filters(client_for, staff):
    api = client_for(staff)
    for query in ("days=0", "days=abc", f"days={10**6}", "product=x"):
        response = api.get(f"/api/stats/?{query}")
        assert response.status_code == 400, query
        assert response.json()["code"] == "invalid"
    assert api.get("/api/stats/?product=987654").json()["code"] == "not_found"


@pytest.mark.parametrize("url", ["/admin/", "/admin/products/product/", "/admin/orders/order/"])
def test_admin_is_staff_only(client, shopper, url):
    assert client.get(url).status_code == 302
    client.force_login(shopper)
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
