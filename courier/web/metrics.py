"""``GET /metrics`` and the middleware that times every request by its route template.

Plug in (courier/web/app.py)::

    app = web.Application(middlewares=[metrics.middleware, ...])  # outermost: sees final status
    app.add_routes(metrics.routes)

Requests are labelled by the route's template (``/api/v1/track/{token}``), never by the raw
path: the raw path would carry tracking tokens and application numbers, and would make the
label set unbounded. Requests that match no route are labelled ``<unmatched>``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from courier import metrics
from courier.web.keys import CONTEXT

UNMATCHED = "<unmatched>"

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


@routes.get("/metrics", name="metrics")
async def get_metrics(request: web.Request) -> web.Response:
    ctx = request.app.get(CONTEXT)
    if ctx is not None:
        await metrics.refresh_from_db(ctx.sessions, ctx.clock)
    return web.Response(
        body=metrics.exposition(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )
