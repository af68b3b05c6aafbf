"""The API's JSON parser: DRF's, minus the two ways a body could surprise the shop.

- Nesting: the stdlib scanner recurses once per level, so a body nested ~1,000 deep raised
  `RecursionError` (a 500). No request of the API is deeper than 3 levels; anything past
  `MAX_JSON_DEPTH` is refused as `400 invalid`, however it is nested.
- Duplicate keys: `{"product_id": 1, "product_id": 2}` is ambiguous (RFC 8259 leaves it to
  the reader, and readers disagree); the stdlib silently keeps the last one. Refused.

A refusal is a `ParseError`, which the exception handler answers as `400 invalid`.
"""

import json

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 32


class DuplicateKey(ValueError):
    pass


def _refuse_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _value in pairs:
            if key in seen:
                raise DuplicateKey(f"The key {json.dumps(key)} appears more than once in one object.")
            seen.add(key)
    return obj


def _refuse_constant(name: str):
    # NaN and Infinity are not JSON (DRF's strict mode refuses them too).
    raise ValueError(f"{name} is not valid JSON.")


def _deeper_than(data, limit: int) -> bool:
    """Whether `data` nests containers more than `limit` levels deep; iterative, so any depth is safe."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def parse_json_body(raw: bytes | str):
    """The body as Python data, or ParseError with a message a person can act on."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode(settings.DEFAULT_CHARSET)
        except UnicodeDecodeError as exc:
            raise ParseError("The request body is not valid UTF-8.") from exc
    try:
        data = json.loads(raw, object_pairs_hook=_refuse_duplicate_keys, parse_constant=_refuse_constant)
    except DuplicateKey as exc:
        raise ParseError(str(exc)) from exc
    except RecursionError as exc:
        # The scanner gave up before we could count: deeper than any limit we would set.
        raise ParseError(f"The JSON is nested more than {MAX_JSON_DEPTH} levels deep.") from exc
    except ValueError as exc:
        raise ParseError(f"Malformed JSON: {exc}") from exc
    if _deeper_than(data, MAX_JSON_DEPTH):
        raise ParseError(f"The JSON is nested more than {MAX_JSON_DEPTH} levels deep.")
    return data


class StrictJSONParser(JSONParser):
    """REST_FRAMEWORK's DEFAULT_PARSER_CLASSES: see the module docstring."""

    def parse(self, stream, media_type=None, parser_context=None):
        return parse_json_body(stream.read() if stream is not None else b"")
