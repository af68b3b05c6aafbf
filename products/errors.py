"""Why a product cannot be sold right now, in the contract's codes."""

from flashsale.error_codes import ErrorCode
from flashsale.errors import DomainError, NotFound


class ProductNotFound(NotFound):
    default_detail = "No such product."


class SaleNotStarted(DomainError):
    code = ErrorCode.SALE_NOT_STARTED
    default_detail = "The sale has not started yet."


class SaleEnded(DomainError):
    code = ErrorCode.SALE_ENDED
    default_detail = "The sale has ended."


class SoldOut(DomainError):
    code = ErrorCode.SOLD_OUT
    default_detail = "Sold out."


class InsufficientStock(DomainError):
    code = ErrorCode.INSUFFICIENT_STOCK

    def __init__(self, *, available: int, requested: int):
        self.available, self.requested = available, requested
        super().__init__(f"Only {available} left; you asked for {requested}.",
                         details={"available": available, "requested": requested})
