"""Intake API for the office's system (role ``intake`` or ``admin``), scoped to the token's office.

``PUT  /api/v1/applications/{application_no}``        register (201) or replace (200)
``POST /api/v1/applications/{application_no}/ready``  the passport is printed (200)

Both are idempotent: the same request twice answers the same and changes nothing the second time.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from courier.services import intake
from courier.services.errors import invalid
from courier.web.auth import require
from courier.web.body import read_json
from courier.web.keys import context_of

routes = web.RouteTableDef()


def _application_no(request: web.Request) -> str:
    value = request.match_info["application_no"]
    errors = intake.check_application_no(value)
    if errors:
        raise invalid(errors, "invalid application number")
    return value


def _json(found: intake.ApplicationView) -> dict[str, Any]:
    return {
        "application_no": found.application_no,
        "state": found.state,
        "outcome": found.outcome,
        "issued_at": found.issued_at.isoformat() if found.issued_at else None,
        "collect_by": found.collect_by.isoformat() if found.collect_by else None,
    }


@routes.put("/api/v1/applications/{application_no}")
async def put_application(request: web.Request) -> web.Response:
    caller = await require(request, "intake")
    application_no = _application_no(request)
    body = await read_json(request, "api/application_put")
    found = await intake.register_application(context_of(request), caller, application_no, body)
    return web.json_response(_json(found), status=201 if found.outcome == "created" else 200)


@routes.post("/api/v1/applications/{application_no}/ready")
async def post_ready(request: web.Request) -> web.Response:
    caller = await require(request, "intake")
    application_no = _application_no(request)
    body = await read_json(request, "api/application_ready")
    found = await intake.passport_ready(context_of(request), caller, application_no, body)
    return web.json_response(_json(found))
