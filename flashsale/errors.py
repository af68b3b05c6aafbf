"""The base of every domain error: an exception that carries the contract's error code.

Services raise these; `flashsale.api_errors` maps each code to its HTTP status once, and
the templates show the same `detail` to shoppers. Domain code never speaks HTTP.
"""


class DomainError(Exception):
    code = "error"
    default_detail = "The request could not be completed."

    def __init__(self, detail: str | None = None, *, errors: dict | None = None, retry_after: int | None = None):
        self.detail = detail or self.default_detail
        self.errors = errors
        self.retry_after = retry_after
        super().__init__(self.detail)


class InvalidInput(DomainError):
    code = "invalid"
    default_detail = "The request is not valid."


class NotFound(DomainError):
    code = "not_found"
    default_detail = "Not found."


class Busy(DomainError):
    """The product's row lock could not be had within LOCK_TIMEOUT_MS; nothing changed."""

    code = "busy"
    default_detail = "The sale is very busy right now; nothing was changed. Please try again in a moment."

    def __init__(self, detail: str | None = None, *, retry_after: int = 1):
        super().__init__(detail, retry_after=retry_after)


class RateLimited(DomainError):
    code = "rate_limited"
    default_detail = "Too many requests. Please wait a moment before trying again."
