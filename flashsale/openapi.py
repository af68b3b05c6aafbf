"""Shared OpenAPI pieces: the error body every endpoint may answer with.

The `code` field is published as an enum of `ErrorCode`, so the schema, the status map and
the domain errors cannot drift apart.
"""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, inline_serializer
from rest_framework import serializers

from flashsale import error_codes
from flashsale.error_codes import ErrorCode

ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "detail": serializers.CharField(help_text="A message for a person."),
        "code": serializers.ChoiceField(
            choices=error_codes.CHOICES, help_text="A machine code; the error table of docs/api.md."
        ),
        "errors": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text="Validation errors by field.",
        ),
    },
)


def error_responses(*answers: ErrorCode | tuple[int, str]) -> dict:
    """`{status: OpenApiResponse(Error)}` describing which codes each status may carry.

    Name an `ErrorCode` (its own status), or a `(status, code)` pair for a code answered
    with another status (a 413 `invalid`).
    """
    by_status: dict[int, list[str]] = {}
    for answer in answers:
        status, code = (answer.status, answer) if isinstance(answer, ErrorCode) else answer
        by_status.setdefault(status, []).append(ErrorCode(code).value)  # an unknown code fails here
    return {
        status: OpenApiResponse(
            response=ErrorSerializer,
            description="Codes: " + ", ".join(f"`{code}`" for code in codes),
            examples=[OpenApiExample(code, value={"detail": "…", "code": code}) for code in codes],
        )
        for status, codes in by_status.items()
    }


AUTH_ERRORS = (ErrorCode.NOT_AUTHENTICATED,)
STAFF_ERRORS = (ErrorCode.NOT_AUTHENTICATED, ErrorCode.PERMISSION_DENIED)
INVALID = (ErrorCode.INVALID,)
UNAVAILABLE = (ErrorCode.UNAVAILABLE,)
# Lists answer 404 `not_found` for a page past the end (or not a page number), as DRF does.
NO_SUCH_PAGE = (ErrorCode.NOT_FOUND,)
