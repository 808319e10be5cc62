"""The ONE error shape of every HTTP answer that is not a success (DESIGN §8)::

    {"error": {"code": "invalid_fields", "message": "...", "details": [{"path", "message"}]}}

``path`` is the JSON-Schema path of a bad body field (``$.address.postal_code``), ``$`` for the
body as a whole, ``url.<name>`` for a bad URL parameter and ``header.<name>`` for a header.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from courier.services.errors import Kind, ServiceError
from schemas import FieldError

# aiohttp's own refusals, renamed into our vocabulary
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_fields",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}

_KIND_STATUS = {
    Kind.INVALID: 422,
    Kind.NOT_FOUND: 404,
    Kind.CONFLICT: 409,
    Kind.IDENTITY: 422,
    Kind.RATE_LIMITED: 429,
    Kind.INELIGIBLE: 422,
    Kind.FORBIDDEN: 403,
    Kind.UNAVAILABLE: 503,
}


def code_for_status(status: int) -> str:
    return _HTTP_CODES.get(status, "client_error" if status < 500 else "server_error")


def error_body(code: str, message: str, details: Sequence[FieldError] = ()) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": [d.as_dict() for d in details]}}


class ApiError(Exception):
    """Raise from a handler; the error middleware turns it into the one shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return web.json_response(
            error_body(self.code, self.message, self.details),
            status=self.status,
            headers=self.headers,
        )

    @classmethod
    def from_service(cls, err: ServiceError) -> ApiError:
        headers = {"Retry-After": str(err.retry_after)} if err.retry_after is not None else {}
        return cls(_KIND_STATUS[err.kind], err.code, err.message, err.details, headers)


def bad_request(message: str, path: str = "$") -> ApiError:
    return ApiError(400, "bad_request", message, [FieldError(path, message)])


def not_found(message: str = "not found") -> ApiError:
    return ApiError(404, "not_found", message)


def unauthorized(message: str) -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        message,
        [FieldError("header.Authorization", message)],
        {"WWW-Authenticate": 'Bearer realm="courier"'},
    )


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def too_large(limit: int) -> ApiError:
    msg = f"request body is larger than {limit} bytes"
    return ApiError(413, "body_too_large", msg, [FieldError("$", msg)])


def from_http_exception(exc: web.HTTPException) -> web.Response:
    """aiohttp's own 404/405/413/…: same status and headers, our body."""
    status = exc.status
    message = exc.reason or "error"
    if status == 404:
        message = "no such resource"
    elif status == 405:
        message = f"method not allowed (allowed: {exc.headers.get('Allow', '')})"
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
    return web.json_response(
        error_body(code_for_status(status), message), status=status, headers=headers
    )


def json_ok(data: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.json_response(dict(data), status=status)


RETRY_AFTER_SECONDS = 10  # when the database is unavailable

UNAVAILABLE_MESSAGE = (
    "the service cannot reach its database right now; try again shortly / layanan sedang "
    "tidak dapat menjangkau basis datanya; coba lagi sebentar lagi"
)
_UNAVAILABLE_PAGE = """<!doctype html>
<html lang="id">
<head><meta charset="utf-8"><title>Layanan sedang terganggu / Service unavailable</title>
<link rel="stylesheet" href="/static/site.css"></head>
<body><main>
<h1>Layanan sedang terganggu</h1><p>Silakan coba lagi beberapa saat lagi.</p>
<p lang="en">The service is unavailable for a moment. Please try again shortly.</p>
</main></body>
</html>
"""


def unavailable(retry_after: int, *, html: bool = False) -> web.Response:
    """503 with ``Retry-After``: the database is unreachable (not the request's fault)."""
    headers = {"Retry-After": str(retry_after)}
    if html:
        return web.Response(
            text=_UNAVAILABLE_PAGE,
            status=503,
            content_type="text/html",
            charset="utf-8",
            headers={**headers, "Cache-Control": "no-store"},
        )
    body = error_body("unavailable", UNAVAILABLE_MESSAGE)
    return web.json_response(body, status=503, headers=headers)
