"""Reading a JSON request body: size-limited, parsed, checked against its JSON Schema.

Malformed JSON is a 400 at path ``$``; a body that parses but breaks its schema (a missing or
unknown field, a wrong type, a bad pattern) is a 422 naming the path of every bad field. Schemas
set ``additionalProperties: false`` so unknown fields are refused, not ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from aiohttp import web

import schemas
from courier.services.errors import invalid
from courier.web.errors import bad_request, too_large
from courier.web.keys import context_of
from schemas import FieldError


def _nul_characters(node: Any, path: str) -> Iterator[FieldError]:
    """NUL is valid JSON but no text column takes it (PostgreSQL refuses it): a 422 here, not a
    500 from the database later."""
    if isinstance(node, str):
        if "\x00" in node:
            yield FieldError(path, "must not contain NUL characters")
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _nul_characters(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _nul_characters(value, f"{path}[{i}]")


async def read_json(request: web.Request, schema: str) -> dict[str, Any]:
    """The body as a dict valid against ``schemas/<schema>.json``; else an :class:`ApiError`
    (400, 413) or an invalid-fields :class:`ServiceError` (422)."""
    try:
        raw = await request.read()  # aiohttp enforces client_max_size while reading chunks
    except web.HTTPRequestEntityTooLarge as err:
        raise too_large(context_of(request).settings.max_body_bytes) from err
    if not raw.strip():
        raise bad_request("request body is empty: a JSON object is expected")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise bad_request("request body is not valid JSON (UTF-8)") from err
    errors = schemas.check(schema, body) + list(_nul_characters(body, "$"))
    if errors:
        raise invalid(errors)
    if not isinstance(body, dict):  # every API schema is an object; keep mypy and callers honest
        raise bad_request("request body must be a JSON object")
    return body
