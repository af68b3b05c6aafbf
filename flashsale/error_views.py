"""Django's 404/500 handlers: JSON under /api/, the shop's pages elsewhere."""

import sys

from django.http import JsonResponse
from django.views.defaults import page_not_found, server_error

from flashsale.api_errors import (
    DATABASE_DOWN,
    SERVER_ERROR_DETAIL,
    UNAVAILABLE_DETAIL,
    error_body,
    json_error_response,
)
from flashsale.error_codes import ErrorCode


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    if _is_api(request):
        return JsonResponse(error_body(ErrorCode.NOT_FOUND, "Not found."), status=404)
    return page_not_found(request, exception)


def server_failure(request):
    _type, exc, _tb = sys.exc_info()
    if isinstance(exc, DATABASE_DOWN):
        # A lost database is a 503 that heals by itself, not a crash.
        if _is_api(request):
            response = JsonResponse(error_body(ErrorCode.UNAVAILABLE, UNAVAILABLE_DETAIL), status=503)
        else:
            from django.shortcuts import render

            response = render(request, "503.html", status=503)
        response["Retry-After"] = "2"
        return response
    if _is_api(request):
        return JsonResponse(error_body(ErrorCode.SERVER_ERROR, SERVER_ERROR_DETAIL), status=500)
    return server_error(request)


def bad_request(request, exception=None):
    if _is_api(request):
        # An oversized body read outside DRF lands here too: answer it as DRF views do.
        known = json_error_response(exception) if exception is not None else None
        return known or JsonResponse(error_body(ErrorCode.INVALID, "Bad request."), status=400)
    from django.views.defaults import bad_request as django_bad_request

    return django_bad_request(request, exception)


def forbidden(request, exception=None):
    if _is_api(request):
        return JsonResponse(error_body(ErrorCode.PERMISSION_DENIED, "You do not have permission to do this."), status=403)
    from django.views.defaults import permission_denied

    return permission_denied(request, exception)
