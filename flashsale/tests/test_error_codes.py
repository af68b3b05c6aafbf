"""The error codes have one home: `ErrorCode`. Every domain error, the status map and OpenAPI derive from it."""

import importlib

import pytest
from django.apps import apps
from drf_spectacular.generators import SchemaGenerator

from flashsale.api_errors import STATUS_BY_CODE, describe
from flashsale.error_codes import ErrorCode
from flashsale.errors import DomainError
from orders.errors import PurchaseLimitReached
from products.errors import InsufficientStock

# The public error table, as integrators read it in docs/api.md.
DOCUMENTED = {
    "invalid": 400, "not_authenticated": 401, "permission_denied": 403, "admission_required": 403,
    "admission_invalid": 403, "not_found": 404, "method_not_allowed": 405, "sale_not_started": 409,
    "sale_ended": 409, "purchase_limit_reached": 409, "sold_out": 409, "insufficient_stock": 409,
    "already_cancelled": 409, "idempotency_key_in_use": 409, "waiting_room_off": 409,
    "idempotency_key_reused": 422, "rate_limited": 429, "busy": 503, "unavailable": 503,
}


def _domain_errors() -> list[type[DomainError]]:
    for app in apps.get_app_configs():
        try:
            importlib.import_module(f"{app.name}.errors")
        except ModuleNotFoundError as missing:
            if missing.name != f"{app.name}.errors":
                raise
    found, todo = [], list(DomainError.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_documented_code_is_in_the_enum_with_its_status():
    assert {code.value: code.status for code in ErrorCode if code.value in DOCUMENTED} == DOCUMENTED
    assert set(ErrorCode) - set(DOCUMENTED) == {ErrorCode.SERVER_ERROR}


def test_every_domain_error_has_a_code_with_a_status():
    errors = _domain_errors()
    assert len(errors) >= 10  # the apps' errors modules were found
    for cls in errors:
        assert isinstance(getattr(cls, "code", None), ErrorCode), f"{cls.__qualname__} names no ErrorCode"
        assert 400 <= cls.code.status <= 599, cls


def test_the_status_map_is_the_enum():
    assert {code.value: code.status for code in ErrorCode} == STATUS_BY_CODE


@pytest.mark.parametrize(
    ("error", "details"),
    [
        (InsufficientStock(available=2, requested=5), {"available": 2, "requested": 5}),
        (PurchaseLimitReached(limit=3, held=2), {"limit": 3, "held": 2}),
    ],
)
def test_structured_details_travel_in_the_body(error, details):
    status, body, _headers = describe(error)
    assert status == 409
    assert body == {"detail": error.detail, "code": error.code.value, **details}
    assert {name: getattr(error, name) for name in details} == details


def test_openapi_publishes_code_as_the_enum():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    code = schema["components"]["schemas"]["Error"]["properties"]["code"]
    assert code["allOf"] == [{"$ref": "#/components/schemas/ErrorCodeEnum"}]
    enum = schema["components"]["schemas"]["ErrorCodeEnum"]["enum"]
    assert sorted(enum) == sorted(code.value for code in ErrorCode)
