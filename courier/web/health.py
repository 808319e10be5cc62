"""Liveness and readiness for load balancers and orchestrators.

``/healthz``: the process answers. ``/readyz``: the database answers and its schema is at the
migrations' head; 503 otherwise (a process on an old schema must not take traffic).
"""

from __future__ import annotations

from aiohttp import web

from courier.services import health
from courier.web.errors import RETRY_AFTER_SECONDS, error_body
from courier.web.keys import context_of
from schemas import FieldError

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    found = await health.readiness(context_of(request))
    if not found.ready:
        body = error_body("not_ready", found.message, [FieldError(found.path, found.message)])
        return web.json_response(
            body, status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        )
    return web.json_response({"status": "ready", "revision": found.revision})
