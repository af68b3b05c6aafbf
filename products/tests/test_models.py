"""The sale-window rule has one Python home (`window_status`) and one SQL home
(`_window_conditions`, behind `with_status`/`in_window`); they agree, boundaries included."""

from datetime import timedelta

import pytest
from django.utils import timezone

from products.models import Product, SaleStatus, sale_status, window_status

NOW = timezone.now().replace(microsecond=0)
MINUTE = timedelta(minutes=1)
# Each side of the window: open (None), in the past, exactly now, in the future.
EDGES = [None, NOW - MINUTE, NOW, NOW + MINUTE]
# Every window the database accepts (a CheckConstraint refuses one that ends before it starts).
WINDOWS = [(start, end) for start in EDGES for end in EDGES if start is None or end is None or end > start]


@pytest.mark.parametrize("stock", [0, 4])
@pytest.mark.parametrize(("starts_at", "ends_at"), WINDOWS)
def test_sql_status_matches_python_status_at_every_edge(make_product, stock, starts_at, ends_at):
    product = make_product(stock=stock)
    Product.objects.filter(pk=product.pk).update(sale_starts_at=starts_at, sale_ends_at=ends_at)
    in_python = sale_status(stock=stock, starts_at=starts_at, ends_at=ends_at, now=NOW)
    in_sql = [status for status in SaleStatus.values
              if Product.objects.with_status(status, now=NOW).filter(pk=product.pk).exists()]
    assert in_sql == [in_python]
    assert Product.objects.in_window(now=NOW).filter(pk=product.pk).exists() == (
        window_status(starts_at=starts_at, ends_at=ends_at, now=NOW) is None
    )


def test_the_window_opens_at_its_start_and_closes_at_its_end():
    assert window_status(starts_at=NOW, ends_at=None, now=NOW) is None
    assert window_status(starts_at=NOW + MINUTE, ends_at=None, now=NOW) == SaleStatus.UPCOMING
    assert window_status(starts_at=None, ends_at=NOW, now=NOW) == SaleStatus.ENDED
    assert window_status(starts_at=None, ends_at=None, now=NOW) is None
