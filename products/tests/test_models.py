"""`ProductQuerySet.with_status` decides in SQL exactly what `sale_status` decides in Python."""

from datetime import timedelta

import pytest

from products.models import Product, SaleStatus


@pytest.mark.parametrize(
    "setup",
    [dict(starts_in=timedelta(hours=1)), dict(stock=4), dict(stock=0), dict(ends_in=-timedelta(minutes=1)),
     dict(stock=0, starts_in=timedelta(hours=1)), dict(ends_in=None)],
)
def test_sql_status_matches_python_status(make_product, setup):
    product = make_product(**setup)
    for status in SaleStatus.values:
        in_sql = Product.objects.with_status(status).filter(pk=product.pk).exists()
        assert in_sql == (product.status == status), (status, product.status)
    assert Product.objects.in_window().filter(pk=product.pk).exists() == (
        product.status in {SaleStatus.ACTIVE, SaleStatus.SOLD_OUT}
    )


def test_open_ended_windows(make_product):
    product = make_product(ends_in=None)
    Product.objects.filter(pk=product.pk).update(sale_starts_at=None)
    assert Product.objects.with_status(SaleStatus.ACTIVE).filter(pk=product.pk).exists()
