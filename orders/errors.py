"""Why an order cannot be made or changed, in the contract's codes."""

from flashsale.error_codes import ErrorCode
from flashsale.errors import DomainError, NotFound


class OrderNotFound(NotFound):
    default_detail = "No such order."


class PurchaseLimitReached(DomainError):
    code = ErrorCode.PURCHASE_LIMIT_REACHED

    def __init__(self, *, limit: int, held: int):
        self.limit, self.held = limit, held
        left = max(limit - held, 0)
        if held == 0:
            detail = f"The limit is {limit} per shopper; please ask for {limit} or fewer."
        elif left == 0:
            detail = f"The limit is {limit} per shopper and you already have {held}."
        else:
            detail = f"The limit is {limit} per shopper; you already have {held}, so you can buy {left} more."
        super().__init__(detail, details={"limit": limit, "held": held})


class AlreadyCancelled(DomainError):
    code = ErrorCode.ALREADY_CANCELLED
    default_detail = "This order is already cancelled."


class IdempotencyKeyInUse(DomainError):
    code = ErrorCode.IDEMPOTENCY_KEY_IN_USE
    default_detail = "A request with this Idempotency-Key is still being processed."

    def __init__(self):
        super().__init__(retry_after=1)


class IdempotencyKeyReused(DomainError):
    code = ErrorCode.IDEMPOTENCY_KEY_REUSED
    default_detail = "This Idempotency-Key was already used with a different request body."
