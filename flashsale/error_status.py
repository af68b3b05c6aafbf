"""Each domain error code's HTTP status, in one place for both faces.

The API's handler (`flashsale.api_errors`) and the shop's HTML views answer a refusal with
the same status, so a browser, a proxy or a test sees a sold-out buy as a 409 either way.
"""

from flashsale.errors import DomainError

STATUS_BY_CODE = {
    "invalid": 400,
    "not_authenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "sale_not_started": 409,
    "sale_ended": 409,
    "purchase_limit_reached": 409,
    "sold_out": 409,
    "insufficient_stock": 409,
    "already_cancelled": 409,
    "idempotency_key_in_use": 409,
    "idempotency_key_reused": 422,
    "rate_limited": 429,
    "busy": 503,
    "unavailable": 503,
}


def status_for(exc: DomainError) -> int:
    return STATUS_BY_CODE[exc.code]
