"""Serializer building blocks for a strict JSON API: unknown fields and loose types are errors."""

from rest_framework import serializers


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer and nothing else: no "2", no 2.0, no true."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know (and read-only ones), naming each."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown or read-only field."] for name in unknown})
        return super().to_internal_value(data)


MAX_ID = 2**63 - 1  # bigint primary keys


def path_id(raw: str, *, not_found: type[Exception]) -> int:
    """An id from the URL: non-digits are `invalid` (400), numbers past bigint are not found."""
    from flashsale.errors import InvalidInput

    if not raw.isascii() or not raw.isdigit():
        raise InvalidInput("Ids are positive integers.", errors={"id": ["A valid integer is required."]})
    value = int(raw)
    if not 1 <= value <= MAX_ID:
        raise not_found()
    return value
