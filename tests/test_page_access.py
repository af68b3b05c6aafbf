"""Every page against every kind of visitor: anonymous, shopper, staff."""

import pytest

from orders.services import purchase

pytestmark = pytest.mark.django_db

ANON, SHOPPER, STAFF = "anonymous", "shopper", "staff"
LOGIN = "/accounts/login/"


@pytest.fixture
def world(make_product, make_user):
    product = make_product(name="Access Test Product")
    owner = make_user("owner")
    order = purchase(user=owner, product_id=product.pk).order
    return {"product": product, "order": order, SHOPPER: owner, STAFF: make_user("boss", staff=True)}


# (path, {role: expected status}); 302s to the login page are checked to go there.
PAGES = [
    ("/", {ANON: 200, SHOPPER: 200, STAFF: 200}),
    ("/products/{slug}/", {ANON: 200, SHOPPER: 200, STAFF: 200}),
    ("/orders/", {ANON: 302, SHOPPER: 200, STAFF: 200}),
    ("/orders/{order}/", {ANON: 302, SHOPPER: 200, STAFF: 404}),  # own orders only, staff included
    ("/dashboard/", {ANON: 302, SHOPPER: 403, STAFF: 200}),
    ("/api/stats/", {ANON: 401, SHOPPER: 403, STAFF: 200}),
    ("/accounts/login/", {ANON: 200, SHOPPER: 302, STAFF: 302}),
    ("/accounts/signup/", {ANON: 200, SHOPPER: 302, STAFF: 302}),
    ("/admin/", {ANON: 302, SHOPPER: 302, STAFF: 200}),
]


@pytest.mark.parametrize(("path", "expected"), PAGES, ids=[p for p, _ in PAGES])
@pytest.mark.parametrize("role", [ANON, SHOPPER, STAFF])
def test_page_access(client, world, path, expected, role):
    if role != ANON:
        client.force_login(world[role])
    url = path.format(slug=world["product"].slug, order=world["order"].pk)
    response = client.get(url)
    assert response.status_code == expected[role], (url, role)
    if response.status_code == 302 and role == ANON:
        assert response["Location"].startswith(LOGIN) or response["Location"].startswith("/admin/login/")
    if response.status_code in (401, 403, 404) or response.status_code == 302:
        assert b"Access Test Product" not in response.content  # never data
