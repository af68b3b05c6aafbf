"""The stock endpoint may reuse a read for up to 250 ms per process; buyers never see that copy."""

import pytest

from orders.services import purchase
from products import selectors
from products.errors import SoldOut


@pytest.fixture
def stock_read_cache(settings):
    settings.STOCK_READ_CACHE_MS = 250
    selectors._recent_levels.clear()
    yield
    selectors._recent_levels.clear()


def test_readers_may_see_a_recent_copy(stock_read_cache, make_product, shopper):
    product = make_product(stock=2)
    assert selectors.stock_level_for_readers(product.pk)["stock"] == 2
    purchase(user=shopper, product_id=product.pk)
    assert selectors.stock_level_for_readers(product.pk)["stock"] == 2  # the copy, < 250 ms old
    assert selectors.stock_level(product.pk)["stock"] == 1


def test_buyers_never_use_the_readers_copy(stock_read_cache, make_product, make_user):
    product = make_product(stock=1)
    assert selectors.stock_level_for_readers(product.pk) == {"id": product.pk, "stock": 1, "status": "active"}
    purchase(user=make_user(), product_id=product.pk)
    with pytest.raises(SoldOut):
        purchase(user=make_user(), product_id=product.pk)


def test_the_copy_is_off_when_the_setting_is_zero(settings, make_product, shopper):
    settings.STOCK_READ_CACHE_MS = 0
    product = make_product(stock=2)
    selectors.stock_level_for_readers(product.pk)
    purchase(user=shopper, product_id=product.pk)
    assert selectors.stock_level_for_readers(product.pk)["stock"] == 1


def test_the_endpoint_is_still_no_store(stock_read_cache, make_product, client_for):
    product = make_product(stock=3)
    response = client_for().get(f"/api/products/{product.pk}/stock/")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert response.json() == {"id": product.pk, "stock": 3, "status": "active"}
