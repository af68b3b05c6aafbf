"""One place that turns every failure under /api/ into the contract's JSON error.

`{"detail": "...", "code": "..."}` plus `errors` for validation and a domain error's
`details` (e.g. `available`, `requested`); the status comes from the code's `ErrorCode`.
Domain errors, DRF's own exceptions, Django's 404/403, django-ratelimit's
`Ratelimited` and a lost database all pass through here.
"""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions as drf
from rest_framework.response import Response

from flashsale.error_codes import ErrorCode
from flashsale.errors import DomainError

logger = logging.getLogger(__name__)

# For the HTML faces, which answer with the same status as the API.
STATUS_BY_CODE = {code.value: code.status for code in ErrorCode}

# DRF exception class -> (status, our code, default message). A body that is not JSON and an
# Accept header we cannot serve keep their precise HTTP status but carry the contract's
# `invalid`, so integrators only ever meet the contract's codes.
_DRF_CODES = [
    (drf.ValidationError, 400, ErrorCode.INVALID, "The request is not valid."),
    (drf.ParseError, 400, ErrorCode.INVALID, "Malformed request body."),
    (drf.UnsupportedMediaType, 415, ErrorCode.INVALID, "Send JSON (Content-Type: application/json)."),
    (drf.NotAcceptable, 406, ErrorCode.INVALID, "Answers are JSON only (Accept: application/json)."),
    (drf.NotAuthenticated, 401, ErrorCode.NOT_AUTHENTICATED, "Authentication credentials were not provided."),
    (drf.AuthenticationFailed, 401, ErrorCode.NOT_AUTHENTICATED, "Invalid token."),
    (drf.PermissionDenied, 403, ErrorCode.PERMISSION_DENIED, "You do not have permission to do this."),
    (drf.NotFound, 404, ErrorCode.NOT_FOUND, "Not found."),
    (drf.MethodNotAllowed, 405, ErrorCode.METHOD_NOT_ALLOWED, "Method not allowed."),
    (drf.Throttled, 429, ErrorCode.RATE_LIMITED, "Too many requests."),
]

DATABASE_DOWN = (OperationalError, InterfaceError)
UNAVAILABLE_DETAIL = "The service is temporarily unavailable. Please try again shortly."
SERVER_ERROR_DETAIL = "Something went wrong on our side."


def error_body(code: str, detail: str, errors: dict | None = None, details: dict | None = None) -> dict:
    body = {"detail": detail, "code": str(code), **(details or {})}
    if errors:
        body["errors"] = errors
    return body


def api_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER."""
    status, body, headers = describe(exc)
    if status is None:
        return None  # not ours: DRF re-raises, handler500 answers
    response = Response(body, status=status, headers=headers)
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        request = context.get("request")
        view = context.get("view")
        header = view.get_authenticate_header(request) if view and request else None
        if header:
            response["WWW-Authenticate"] = header
    return response


def describe(exc) -> tuple[int | None, dict, dict]:
    """(status, body, headers) for a known failure, or (None, {}, {})."""
    if isinstance(exc, DomainError):
        body = error_body(exc.code, exc.detail, exc.errors, exc.details)
        return exc.code.status, body, _retry_after(exc.retry_after)
    if isinstance(exc, RequestDataTooBig):
        # Refused from Content-Length alone, before the body is read. 413 says "too large" to
        # any HTTP client or proxy; the code stays the contract's `invalid` (bad input).
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return 413, error_body(ErrorCode.INVALID, f"The request body is larger than the {limit}-byte limit."), {}
    if isinstance(exc, Ratelimited):
        return ErrorCode.RATE_LIMITED.status, error_body(ErrorCode.RATE_LIMITED, "Too many requests."), _retry_after(60)
    if isinstance(exc, Http404):
        return ErrorCode.NOT_FOUND.status, error_body(ErrorCode.NOT_FOUND, "Not found."), {}
    if isinstance(exc, DjangoPermissionDenied):
        denied = ErrorCode.PERMISSION_DENIED
        return denied.status, error_body(denied, "You do not have permission to do this."), {}
    if isinstance(exc, DATABASE_DOWN):
        logger.warning("database unavailable: %s", exc)
        return ErrorCode.UNAVAILABLE.status, error_body(ErrorCode.UNAVAILABLE, UNAVAILABLE_DETAIL), _retry_after(2)
    for exc_class, status, code, default in _DRF_CODES:
        if isinstance(exc, exc_class):
            headers = _retry_after(getattr(exc, "wait", None)) if code is ErrorCode.RATE_LIMITED else {}
            if isinstance(exc, drf.ValidationError):
                return status, error_body(code, default, _field_errors(exc.detail)), headers
            return status, error_body(code, _message(exc.detail, default)), headers
    return None, {}, {}


def json_error_response(exc) -> JsonResponse | None:
    """For plain Django views and handlers: the same body as DRF views give."""
    status, body, headers = describe(exc)
    if status is None:
        return None
    response = JsonResponse(body, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def _retry_after(seconds) -> dict:
    if seconds is None:
        return {}
    return {"Retry-After": str(max(1, int(round(float(seconds)))))}


def _message(detail, default: str) -> str:
    if isinstance(detail, str) and detail:
        return str(detail)
    return default


def _field_errors(detail) -> dict:
    """DRF's nested error detail as `{"field": ["message", ...]}`, always a dict of lists of str."""
    if isinstance(detail, dict):
        return {str(field): _flatten(messages) for field, messages in detail.items()}
    return {"non_field_errors": _flatten(detail)}


def _flatten(messages) -> list[str]:
    if isinstance(messages, dict):
        return [f"{key}: {msg}" for key, value in messages.items() for msg in _flatten(value)]
    if isinstance(messages, (list, tuple)):
        return [msg for item in messages for msg in _flatten(item)]
    return [str(messages)]
