"""JSON bodies of any depth, width and shape: a 4xx JSON answer, never a 500, no stock moved.

The property test reads the JSON endpoints from the OpenAPI schema itself, so an endpoint
added later is covered without touching this file.
"""

import json

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flashsale.api_errors import STATUS_BY_CODE
from flashsale.parsers import MAX_JSON_DEPTH
from orders.models import Order
from products.models import Product

# Repeating units of a nest; each closes with the matching suffix.
NESTS = [("[", "]"), ('{"k": ', "}"), ("[1, ", "]"), ('{"a": 1, "b": ', "}"), ('[{"x": ', "}]")]


def _nest(depth: int, units: list[tuple[str, str]], core: str = "1") -> str:
    opens = "".join(units[i % len(units)][0] for i in range(depth))
    closes = "".join(units[i % len(units)][1] for i in reversed(range(depth)))
    return opens + core + closes


def _json_operations(client) -> list[tuple[str, str, list[str]]]:
    """(method, path, body field names) of every operation whose body is JSON."""
    schema = client.get("/api/schema/?format=json").json()
    components = schema["components"]["schemas"]
    found = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            body_schema = content["application/json"]["schema"]
            if "$ref" in body_schema:
                body_schema = components[body_schema["$ref"].rsplit("/", 1)[1]]
            found.append((method.upper(), path, sorted(body_schema.get("properties", {})) or ["quantity"]))
    return found


@pytest.mark.django_db
def test_the_schema_lists_the_endpoints_that_take_json(client):
    operations = {(method, path) for method, path, _fields in _json_operations(client)}
    assert {("POST", "/api/auth/token/"), ("POST", "/api/orders/"), ("POST", "/api/products/"),
            ("PATCH", "/api/products/{id}/"), ("POST", "/api/products/{id}/restock/")} <= operations


@st.composite
def hostile_bodies(draw, fields: list[str]) -> str:
    """A body no endpoint may accept: a deep or wide container where a scalar belongs."""
    units = draw(st.lists(st.sampled_from(NESTS), min_size=1, max_size=3))
    depth = draw(st.one_of(st.integers(1, MAX_JSON_DEPTH + 2), st.integers(MAX_JSON_DEPTH, 60_000)))
    deep = _nest(depth, units)
    field = draw(st.sampled_from(fields))
    width = draw(st.integers(1, 3_000))
    shape = draw(st.sampled_from(["whole", "at-a-field", "beside-a-field", "wide", "wide-array", "duplicate"]))
    if shape == "whole":
        return _nest(depth, [("[", "]"), *units])  # an array at the top: never an object
    if shape == "at-a-field":
        return json.dumps({field: "PLACEHOLDER"}).replace('"PLACEHOLDER"', deep)
    if shape == "beside-a-field":
        return f'{{"{field}": [], "other": {deep}}}'
    if shape == "wide":
        members = ", ".join(f'"k{i}": {_nest(i % 5, units)}' for i in range(width))
        return f'{{{members}, "{field}": {deep}}}'
    if shape == "wide-array":
        return "[" + ", ".join([deep] * min(width, 200)) + "]"
    return f'{{"{field}": 1, "{field}": 2, "deep": {deep}}}'


@pytest.mark.django_db
def test_no_json_body_reaches_a_500_on_any_json_endpoint(client_for, staff, shopper, make_product, no_rate_limits):
    product = make_product(stock=7)
    order_target = make_product(stock=3)
    clients = [client_for(staff), client_for(shopper)]
    operations = _json_operations(clients[0])
    known_codes = set(STATUS_BY_CODE)

    def totals():
        return Product.objects.aggregate(stock=Sum("stock"))["stock"], Order.objects.count()

    before = totals()

    def check_operation(method, path, fields):
        url = path.replace("{id}", str(product.pk))

        @given(body=hostile_bodies(fields), who=st.sampled_from([0, 1]))
        @settings(max_examples=25, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def check(body, who):
            if '"product_id"' in body:
                body = body.replace('"product_id": 1', f'"product_id": {order_target.pk}')
            response = clients[who].generic(method, url, body, content_type="application/json")
            assert 400 <= response.status_code < 500, (method, path, response.status_code, body[:200])
            assert response["Content-Type"].startswith("application/json")
            assert response.json()["code"] in known_codes
            assert totals() == before

        check()

    for method, path, fields in operations:
        check_operation(method, path, fields)


@pytest.mark.django_db
@pytest.mark.parametrize("body", [
    '{"product_id": 1, "product_id": 2}',
    '{"product_id": 1, "quantity": {"a": 1, "a": 1}}',
    '[{"x": 1}, {"y": 1, "y": 2}]',
])
def test_a_key_named_twice_in_one_object_is_400_invalid(client_for, shopper, make_product, body):
    make_product(stock=5)
    response = client_for(shopper).generic("POST", "/api/orders/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "more than once" in response.json()["detail"]
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_the_same_key_in_two_objects_is_fine(client_for, staff, make_product):
    product = make_product(stock=5)
    body = json.dumps({"quantity": 2})
    response = client_for(staff).generic("POST", f"/api/products/{product.pk}/restock/", body,
                                         content_type="application/json")
    assert response.status_code == 200 and response.json()["stock"] == 7


@pytest.mark.django_db
def test_depth_is_counted_exactly(client_for, shopper, make_product):
    """At the limit the parser accepts (and validation refuses the list); one more is refused by the parser."""
    product = make_product(stock=5)
    client = client_for(shopper)

    def post(depth):
        body = f'{{"product_id": {product.pk}, "quantity": {_nest(depth - 1, [("[", "]")])}}}'
        return client.generic("POST", "/api/orders/", body, content_type="application/json").json()

    at_limit, past_limit = post(MAX_JSON_DEPTH), post(MAX_JSON_DEPTH + 1)
    assert at_limit["code"] == "invalid" and "quantity" in at_limit["errors"]
    assert past_limit["code"] == "invalid" and "nested" in past_limit["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("body", ["NaN", '{"quantity": Infinity}', "\xff", '{"quantity": 1'])
def test_what_json_does_not_allow_is_400_invalid(client_for, staff, make_product, body):
    product = make_product(stock=5)
    raw = body.encode("latin-1")
    response = client_for(staff).generic("POST", f"/api/products/{product.pk}/restock/", raw,
                                         content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "invalid"
