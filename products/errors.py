"""Why a product cannot be sold right now, in the contract's codes."""

from flashsale.errors import DomainError, NotFound


class ProductNotFound(NotFound):
    default_detail = "No such product."


class SaleNotStarted(DomainError):
    code = "sale_not_started"
    default_detail = "The sale has not started yet."


class SaleEnded(DomainError):
    code = "sale_ended"
    default_detail = "The sale has ended."


class SoldOut(DomainError):
    code = "sold_out"
    default_detail = "Sold out."


class InsufficientStock(DomainError):
    code = "insufficient_stock"

    def __init__(self, *, available: int, requested: int):
        super().__init__(f"Only {available} left; you asked for {requested}.")
