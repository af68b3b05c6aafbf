"""Shared setup for the waiting room's tests: a product with a line, and moments relative to its start."""

from datetime import timedelta

import pytest


@pytest.fixture
def line_product(make_product):
    """A waiting-room product whose sale starts in 10 minutes (so tests can join before and after)."""

    def make(*, rate=60, starts_in=timedelta(minutes=10), **fields):
        return make_product(waiting_room=True, admit_per_minute=rate, starts_in=starts_in, **fields)

    return make


@pytest.fixture
def at():
    """`at(product, seconds)`: the moment `seconds` after the product's sale starts (negative: before)."""

    def moment(product, seconds: float):
        return product.sale_starts_at + timedelta(seconds=seconds)

    return moment
