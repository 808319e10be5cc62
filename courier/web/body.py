"""Reading a JSON request body: size-limited, parsed, checked against its JSON Schema.

A body that is not declared ``application/json`` (or ``…+json``) is a 415 before a byte of it is
read. Malformed JSON is a 400 at path ``$``; an integer too long for Python to convert (over
``sys.get_int_max_str_digits()`` digits) is a 400 naming its path. Every string then goes through
the one text rule (:mod:`courier.domain.text`: no lone surrogates, no control characters, a
newline only in free text; NFC) and the body through its schema: a body that breaks either (a
missing or unknown field, a wrong type, a bad pattern) is a 422 naming the path of every bad
field. Schemas set ``additionalProperties: false`` so unknown fields are refused, not ignored.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from aiohttp import web

import schemas
from courier.domain import text
from courier.services.errors import invalid
from courier.web.errors import ApiError, bad_request, too_large
from courier.web.keys import context_of
from schemas import FieldError

JSON_TYPES = ("application/json",)


class _LongInteger:
    """Stands in for an integer literal too long to convert, so its path can be named."""


def _parse_int(literal: str) -> int | _LongInteger:
    if len(literal.lstrip("-")) > sys.get_int_max_str_digits():
        return _LongInteger()
    return int(literal)


def _long_integers(node: Any, path: str) -> Iterator[str]:
    if isinstance(node, _LongInteger):
        yield path
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _long_integers(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _long_integers(value, f"{path}[{i}]")


def require_json(request: web.Request) -> None:
    """415 unless the request declares a JSON body."""
    kind = request.content_type.lower()
    if kind not in JSON_TYPES and not kind.endswith("+json"):
        message = "the request body must be JSON: send Content-Type: application/json"
        raise ApiError(
            415, "unsupported_media_type", message, [FieldError("header.Content-Type", message)]
        )


async def read_json(
    request: web.Request, schema: str, *, free_text: Iterable[str] = ()
) -> dict[str, Any]:
    """The body as a dict valid against ``schemas/<schema>.json``, its text NFC-normalised
    (``free_text``: the paths whose text may hold newlines); else an :class:`ApiError` (400,
    413, 415) or an invalid-fields :class:`ServiceError` (422)."""
    require_json(request)
    try:
        raw = await request.read()  # aiohttp enforces client_max_size while reading chunks
    except web.HTTPRequestEntityTooLarge as err:
        raise too_large(context_of(request).settings.max_body_bytes) from err
    if not raw.strip():
        raise bad_request("request body is empty: a JSON object is expected")
    try:
        parsed = json.loads(raw.decode("utf-8"), parse_int=_parse_int)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise bad_request("request body is not valid JSON (UTF-8)") from err
    for path in _long_integers(parsed, "$"):
        raise bad_request("an integer with too many digits", path)
    body, errors = text.clean_tree(parsed, free_text=frozenset(free_text))
    refused = {e.path for e in errors}
    errors += [e for e in schemas.check(schema, body) if e.path not in refused]
    if errors:
        raise invalid(errors)
    if not isinstance(body, dict):  # every API schema is an object; keep mypy and callers honest
        raise bad_request("request body must be a JSON object")
    return body
