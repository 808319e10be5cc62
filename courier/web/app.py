"""The aiohttp application: middlewares (request id, request log, the one error shape, the body
limit), the headers every answer carries, and the route tables of the modules in
:data:`ROUTE_MODULES`.

The database being unreachable is never the request's fault: whatever route meets it answers 503
``unavailable`` with ``Retry-After`` (one mapping, :func:`courier.services.errors.
database_unavailable`), never a 500. Every answer leaves with a ``Server`` header that names no
versions and ``X-Content-Type-Options: nosniff``; every HTML answer with the security headers of
:data:`HTML_SECURITY_HEADERS` (unless its handler set stricter or looser ones, as ``/docs``
does); every JSON answer of ``/api/`` with ``Cache-Control: no-store`` (they carry names,
phones and tokens; nothing in between may keep them).

Each route module exposes ``routes: web.RouteTableDef`` and may expose ``middleware`` (an aiohttp
middleware that must see every request, e.g. metrics): those run outermost, in list order; and
``setup(app)``, called once the context is in place (e.g. metrics' cache and second address).
"""

from __future__ import annotations

import importlib
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from types import ModuleType

import structlog
from aiohttp import web

from courier import logging as courier_logging
from courier.context import AppContext
from courier.services.errors import ServiceError, database_unavailable
from courier.web.console import is_console_path
from courier.web.errors import (
    RETRY_AFTER_SECONDS,
    ApiError,
    error_body,
    from_http_exception,
    too_large,
    unavailable,
)
from courier.web.keys import CONTEXT
from courier.web.pages import is_page_path

# The one list of what the HTTP surface serves.
ROUTE_MODULES: tuple[str, ...] = (
    "courier.web.metrics",  # first: its middleware times every request, including refusals
    "courier.web.health",
    "courier.web.intake",
    "courier.web.optin",
    "courier.web.regions",
    "courier.web.dispatch",
    "courier.web.artefacts",
    "courier.web.manifests",
    "courier.web.actions",
    "courier.web.console_api",
    "courier.web.console",
    "courier.web.contracts",
    "courier.web.pages",
    "courier.web.optin_page",
    "courier.web.webhooks",
    "courier.web.tracking",
    "courier.web.openapi",
)

REQUEST_ID_HEADER = "X-Request-Id"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")  # a caller's id is echoed only if harmless

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger("courier.web")

SERVER = "passport-courier"  # no versions: they only help an attacker pick an exploit
HTML_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _route_template(request: web.Request) -> str:
    """The matched route's template (``/t/{token}``), never the raw path: paths hold secrets."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(unmatched)"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _SAFE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    courier_logging.clear()
    courier_logging.bind(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers[REQUEST_ID_HEADER] = request_id
        return response
    except web.HTTPException as exc:  # only redirects get past error_shape
        status = exc.status
        exc.headers[REQUEST_ID_HEADER] = request_id
        raise
    finally:
        log.info(
            "http_request",
            method=request.method,
            route=_route_template(request),
            status=status,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        courier_logging.clear()


@web.middleware
async def error_shape(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal leaves in the one shape; an unexpected exception is a generic 500."""
    try:
        return await handler(request)
    except ApiError as err:
        return err.response()
    except ServiceError as err:
        return ApiError.from_service(err).response()
    except web.HTTPRequestEntityTooLarge:
        return too_large(request.app[CONTEXT].settings.max_body_bytes).response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like pass through untouched
        return from_http_exception(exc)
    except Exception as exc:
        if database_unavailable(exc):
            # an outage, not a bug: one line without the traceback, and a 503 to retry later
            log.warning("database_unavailable", route=_route_template(request), error=_summary(exc))
            return unavailable(RETRY_AFTER_SECONDS, html=_wants_html(request))
        # the traceback goes to the log (redacted, with the request id), never to the client
        log.exception("unhandled_error", route=_route_template(request))
        return web.json_response(
            error_body("internal", "internal error; quote the X-Request-Id header when reporting"),
            status=500,
        )


def _summary(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"  # redacted by the one processor like any text


def _wants_html(request: web.Request) -> bool:
    return is_page_path(request.path) or is_console_path(request.path)


async def finish_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Headers of every answer (see the module doc): set last, whoever made the response."""
    headers = response.headers
    headers["Server"] = SERVER
    headers.setdefault("X-Content-Type-Options", "nosniff")
    kind = (response.content_type or "").lower()
    if kind == "text/html":
        for name, value in HTML_SECURITY_HEADERS.items():
            headers.setdefault(name, value)
    elif kind == "application/json" and request.path.startswith("/api/"):
        headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a declared oversized body before reading a byte of it. Chunked bodies carry no
    length: aiohttp's ``client_max_size`` stops those while they are read."""
    limit = request.app[CONTEXT].settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    return await handler(request)


def _route_modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in ROUTE_MODULES]


def create_app(ctx: AppContext) -> web.Application:
    modules = _route_modules()
    outer = [m.middleware for m in modules if hasattr(m, "middleware")]
    app = web.Application(
        client_max_size=ctx.settings.max_body_bytes,
        middlewares=[*outer, request_context, error_shape, body_limit],
    )
    app[CONTEXT] = ctx
    app.on_response_prepare.append(finish_headers)
    for module in modules:
        app.router.add_routes(module.routes)
        if hasattr(module, "setup"):
            module.setup(app)
    return app
