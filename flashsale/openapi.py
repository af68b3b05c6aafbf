"""Shared OpenAPI pieces: the error body every endpoint may answer with."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "detail": serializers.CharField(help_text="A message for a person."),
        "code": serializers.CharField(help_text="A machine code from the contract's error table."),
        "errors": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text="Validation errors by field.",
        ),
    },
)


def error_responses(*pairs: tuple[int, str]) -> dict:
    """`{status: OpenApiResponse(Error)}` describing which codes each status may carry."""
    by_status: dict[int, list[str]] = {}
    for status, code in pairs:
        by_status.setdefault(status, []).append(code)
    return {
        status: OpenApiResponse(
            response=ErrorSerializer,
            description="Codes: " + ", ".join(f"`{code}`" for code in codes),
            examples=[OpenApiExample(code, value={"detail": "…", "code": code}) for code in codes],
        )
        for status, codes in by_status.items()
    }


AUTH_ERRORS = ((401, "not_authenticated"),)
STAFF_ERRORS = ((401, "not_authenticated"), (403, "permission_denied"))
INVALID = ((400, "invalid"),)
UNAVAILABLE = ((503, "unavailable"),)
# Lists answer 404 `not_found` for a page past the end (or not a page number), as DRF does.
NO_SUCH_PAGE = ((404, "not_found"),)
