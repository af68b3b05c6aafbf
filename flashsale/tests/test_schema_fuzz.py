"""schemathesis against /api/schema/ of a real gunicorn: no 5xx, every answer as documented.

Each operation gets a bounded number of generated requests (valid and invalid), once with a
shopper's token and once with a staff token. Checks: never a server error; the status code,
the content type, the headers and the body conform to the schema.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.faults import token_for
from tests.servers import running_app

EXAMPLES_PER_OPERATION = 15
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_api_keeps_its_schema_under_generated_input(make_user, make_product):
    make_product(stock=50)
    make_product(stock=0)
    tokens = {"shopper": token_for(make_user()), "staff": token_for(make_user(staff=True))}
    failures = []
    with running_app(workers=2) as base:
        schema = schemathesis.openapi.from_url(f"{base}/api/schema/?format=json")
        for result in schema.get_all_operations():
            operation = result.ok()
            for role, token in tokens.items():
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    failures += _fuzz(operation, mode, base, {"Authorization": f"Token {token}"}, role)
    assert not failures, "\n\n".join(failures)


def _fuzz(operation, mode, base, headers, role) -> list[str]:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case):
        response = case.call(base_url=base, headers=headers)
        if response.status_code == 414:
            # gunicorn refuses request lines over 4094 bytes itself, before Django runs;
            # outside the API (see docs/failure-modes.md, Hostile input).
            return
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        return []  # no invalid input exists for this operation (e.g. GET /api/health/)
    except (Exception, BaseExceptionGroup) as exc:  # collected: one report per operation that broke
        return [f"{role} {mode.value} {operation.label}: {exc}"]
    return []
