"""``GET /metrics`` and the middleware that times every request by its route template.

Plug in (courier/web/app.py)::

    app = web.Application(middlewares=[metrics.middleware, ...])  # outermost: sees final status
    app.add_routes(metrics.routes)
    metrics.setup(app)

Requests are labelled by the route's template (``/api/v1/track/{token}``), never by the raw
path: the raw path would carry tracking tokens and application numbers, and would make the
label set unbounded. Requests that match no route are labelled ``<unmatched>``.

Who may scrape: nobody by default. ``metrics.bearer_token`` opens ``/metrics`` on the API's
address to requests carrying that token; ``metrics.listen`` (``HOST:PORT``) serves it, alone, on
a second address for a scraper on a private network (the token is asked there too when set).
The database gauges are read at most every ``metrics.db_refresh_seconds`` of the service clock.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import structlog
from aiohttp import web

from courier import metrics
from courier.context import AppContext
from courier.web.errors import not_found, unauthorized
from courier.web.keys import CONTEXT

UNMATCHED = "<unmatched>"
GAUGES: web.AppKey[metrics.DbGauges] = web.AppKey("courier_db_gauges", metrics.DbGauges)

log = structlog.get_logger("courier.web.metrics")
routes = web.RouteTableDef()


def route_template(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    if resource is None:
        return UNMATCHED
    return resource.canonical


@web.middleware
async def middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except Exception as exc:
        # an error a later middleware turns into a response carries its status (ApiError)
        status = int(getattr(exc, "status", 500))
        raise
    finally:
        metrics.observe_request(
            route_template(request), request.method, status, time.perf_counter() - started
        )


def _token_matches(request: web.Request, expected: str) -> bool:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    given = value.strip().encode("utf-8", "surrogateescape")
    # constant time: the comparison must not reveal how much of the token was right
    return scheme.lower() == "bearer" and hmac.compare_digest(given, expected.encode())


async def _answer(request: web.Request, *, open_without_token: bool) -> web.Response:
    settings = request.app[CONTEXT].settings
    token = settings.metrics_bearer_token
    if token is None and not open_without_token:
        raise not_found()  # not served on this address: an unknown path, nothing more
    if token is not None and not _token_matches(request, token):
        raise unauthorized("a Bearer metrics token is required")
    await request.app[GAUGES].refresh()
    return web.Response(
        body=metrics.exposition(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


@routes.get("/metrics", name="metrics")
async def get_metrics(request: web.Request) -> web.Response:
    return await _answer(request, open_without_token=False)


async def _get_listener_metrics(request: web.Request) -> web.Response:
    return await _answer(request, open_without_token=True)


def _gauges(ctx: AppContext) -> metrics.DbGauges:
    every = timedelta(seconds=ctx.settings.metrics_db_refresh_seconds)
    return metrics.DbGauges(ctx.sessions, ctx.clock, every)


def listener_app(ctx: AppContext) -> web.Application:
    """The application ``metrics.listen`` serves: ``/metrics`` and nothing else."""
    app = web.Application(middlewares=[middleware])
    app[CONTEXT] = ctx
    app[GAUGES] = _gauges(ctx)
    app.router.add_get("/metrics", _get_listener_metrics)
    return app


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


async def _listener(app: web.Application) -> AsyncIterator[None]:
    """Serve :func:`listener_app` on ``metrics.listen`` while the main application runs."""
    ctx = app[CONTEXT]
    if not ctx.settings.metrics_listen:
        yield
        return
    host, port = split_listen(ctx.settings.metrics_listen)
    runner = web.AppRunner(listener_app(ctx), access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as err:
            # the API keeps serving; metrics stay closed (never opened elsewhere instead)
            log.error(
                "metrics_listen_failed", listen=ctx.settings.metrics_listen, error=err.strerror
            )
        else:
            log.info("metrics_listening", addresses=[list(a) for a in runner.addresses])
        yield
    finally:
        await runner.cleanup()


def setup(app: web.Application) -> None:
    app[GAUGES] = _gauges(app[CONTEXT])
    app.cleanup_ctx.append(_listener)
