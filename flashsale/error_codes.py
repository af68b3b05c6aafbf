"""Every error code the API answers with, and the HTTP status it carries: the one home of both.

Domain exceptions (`*/errors.py`) name a member; `flashsale.api_errors` takes the status
from it; OpenAPI publishes the members as the enum of `code`; the load tools read their
expected refusals from it. No Django here: the Locust file imports it too.

A few transport refusals (408, 411, 413, and 406/415) carry `invalid` with their own
precise status; `status` is the code's usual one.
"""

from enum import StrEnum


class ErrorCode(StrEnum):
    status: int

    def __new__(cls, code: str, status: int):
        member = str.__new__(cls, code)
        member._value_ = code
        member.status = status
        return member

    INVALID = "invalid", 400
    NOT_AUTHENTICATED = "not_authenticated", 401
    PERMISSION_DENIED = "permission_denied", 403
    ADMISSION_REQUIRED = "admission_required", 403
    ADMISSION_INVALID = "admission_invalid", 403
    NOT_FOUND = "not_found", 404
    METHOD_NOT_ALLOWED = "method_not_allowed", 405
    SALE_NOT_STARTED = "sale_not_started", 409
    SALE_ENDED = "sale_ended", 409
    PURCHASE_LIMIT_REACHED = "purchase_limit_reached", 409
    SOLD_OUT = "sold_out", 409
    INSUFFICIENT_STOCK = "insufficient_stock", 409
    ALREADY_CANCELLED = "already_cancelled", 409
    IDEMPOTENCY_KEY_IN_USE = "idempotency_key_in_use", 409
    WAITING_ROOM_OFF = "waiting_room_off", 409
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused", 422
    RATE_LIMITED = "rate_limited", 429
    BUSY = "busy", 503
    UNAVAILABLE = "unavailable", 503
    # Not a promise but a bug: what /api/ answers instead of an HTML 500 page.
    SERVER_ERROR = "server_error", 500


CHOICES = [(code.value, code.value) for code in ErrorCode]  # for forms and the OpenAPI enum

# What a correct shop answers a crowd racing for too few units: the load tools count these
# as the sale working, and anything else but a 201 as a failure.
SALE_REFUSALS = frozenset({ErrorCode.SOLD_OUT, ErrorCode.INSUFFICIENT_STOCK, ErrorCode.PURCHASE_LIMIT_REACHED})
