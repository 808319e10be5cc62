"""Liveness and readiness for load balancers and orchestrators.

``/healthz``: the process answers. ``/readyz``: the database answers and its schema is at the
migrations' head; 503 otherwise (a process on an old schema must not take traffic).
"""

from __future__ import annotations

from functools import cache

import structlog
from aiohttp import web
from sqlalchemy import text

from courier.db.migrate import current_revision, head_revision
from courier.web.errors import error_body
from courier.web.keys import context_of
from schemas import FieldError

routes = web.RouteTableDef()
log = structlog.get_logger("courier.web.health")


@cache
def _head() -> str:
    return head_revision()  # reads the migration scripts from disk: once per process


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    engine = context_of(request).engine
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        current = await current_revision(engine)
    except Exception as err:  # any failure to reach the database means "not ready"
        log.warning("readyz_database_unreachable", exc_type=type(err).__name__)
        return _not_ready("database", "database is not reachable")
    head = _head()
    if current != head:
        return _not_ready(
            "database.revision", f"schema at {current or 'base'}, expected {head}: run migrate"
        )
    return web.json_response({"status": "ready", "revision": current})


def _not_ready(path: str, message: str) -> web.Response:
    body = error_body("not_ready", message, [FieldError(path, message)])
    return web.json_response(body, status=503)
