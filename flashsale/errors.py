"""The base of every domain error: an exception that carries one of the contract's error codes.

Services raise these; `flashsale.api_errors` takes the HTTP status from the code (see
`flashsale.error_codes`), and the templates show the same `detail` to shoppers. Domain
code never speaks HTTP. `details` holds the figures an integrator can act on (how many
are left, what the limit is); they travel in the JSON body next to `detail` and `code`.
"""

from flashsale.error_codes import ErrorCode


class DomainError(Exception):
    code: ErrorCode  # every concrete subclass names one; a test checks it
    default_detail = "The request could not be completed."

    def __init__(self, detail: str | None = None, *, errors: dict | None = None, retry_after: int | None = None,
                 details: dict | None = None):
        self.detail = detail or self.default_detail
        self.errors = errors
        self.retry_after = retry_after
        self.details = details or {}
        super().__init__(self.detail)


class InvalidInput(DomainError):
    code = ErrorCode.INVALID
    default_detail = "The request is not valid."


class NotFound(DomainError):
    code = ErrorCode.NOT_FOUND
    default_detail = "Not found."


class Busy(DomainError):
    """The product's row lock could not be had within LOCK_TIMEOUT_MS; nothing changed."""

    code = ErrorCode.BUSY
    default_detail = "The sale is very busy right now; nothing was changed. Please try again in a moment."

    def __init__(self, detail: str | None = None, *, retry_after: int = 1):
        super().__init__(detail, retry_after=retry_after)


class RateLimited(DomainError):
    code = ErrorCode.RATE_LIMITED
    default_detail = "Too many requests. Please wait a moment before trying again."
