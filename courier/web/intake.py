"""Intake API for the office's system (role ``intake`` or ``admin``), scoped to the token's office.

``PUT  /api/v1/applications/{application_no}``        register (201) or replace (200)
``POST /api/v1/applications/{application_no}/ready``  the passport is printed (200)

Both are idempotent: the same request twice answers the same and changes nothing the second time.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from core.clock import to_wib
from courier.db.engine import transaction
from courier.db.models import Application, Office
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


def _view(app: Application, outcome: str) -> dict[str, Any]:
    """What the office's system gets back: no personal data it did not just send."""
    return {
        "application_no": app.application_no,
        "state": app.state,
        "outcome": outcome,
        "issued_at": app.issued_at.isoformat() if app.issued_at else None,
        "collect_by": app.collect_by.isoformat() if app.collect_by else None,
    }


@routes.put("/api/v1/applications/{application_no}")
async def put_application(request: web.Request) -> web.Response:
    principal = await require(request, "intake")
    application_no = _application_no(request)
    body = await read_json(request, "api/application_put")
    ctx = context_of(request)
    now = ctx.clock.now()
    data, errors = intake.parse_application(application_no, body, today=to_wib(now).date())
    if data is None:
        raise invalid(errors)
    async with transaction(ctx.sessions) as session:
        office = await session.get_one(Office, principal.office_id)
        app, outcome = await intake.upsert_application(
            session, office=office, data=data, now=now, actor=principal.actor
        )
    return web.json_response(_view(app, outcome), status=201 if outcome == "created" else 200)


@routes.post("/api/v1/applications/{application_no}/ready")
async def post_ready(request: web.Request) -> web.Response:
    principal = await require(request, "intake")
    application_no = _application_no(request)
    body = await read_json(request, "api/application_ready")
    ctx = context_of(request)
    now = ctx.clock.now()
    ready, errors = intake.parse_ready(body, now=now)
    if ready is None:
        raise invalid(errors)
    passport_hash = await intake.passport_hash_for(
        ctx.sessions,
        office_id=principal.office_id,
        application_no=application_no,
        passport_no=ready.passport_no,
        pepper=ctx.settings.passport_pepper,
    )
    async with transaction(ctx.sessions) as session:
        office = await session.get_one(Office, principal.office_id)
        app, outcome = await intake.mark_ready(
            session,
            office=office,
            application_no=application_no,
            ready=ready,
            passport_hash=passport_hash,
            now=now,
            actor=principal.actor,
        )
    return web.json_response(_view(app, outcome))
