"""The dispatcher's staff API (role ``dispatcher`` or ``admin``), scoped to the token's office.

``GET  /api/v1/exceptions``                 the exceptions queue (open by default), newest first
``GET  /api/v1/deliveries/{id}``            one delivery as a dispatcher acts on it
``POST /api/v1/handovers/{id}/review``      approve or refuse a handover under review
``POST /api/v1/deliveries/{id}/reship``     re-ship a returned passport, or keep it at the counter
``POST /api/v1/deliveries/{id}/collected``  the applicant collected the passport at the counter

Every id outside the caller's office is 404, exactly like one that does not exist (invariant 5).
Each action is one transaction through the use case that owns its rules (handover review, watch);
they audit and record custody. The queue carries no applicant names, phones or addresses: it is
shown on shared screens; the delivery view has the name and phone (the dispatcher calls them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

import schemas
from courier.db.engine import transaction
from courier.db.models import Delivery, ExceptionItem, Handover
from courier.domain import regions
from courier.services import dispatch, handover, watch
from courier.services.errors import Kind, ServiceError, invalid
from courier.web.auth import Principal, require
from courier.web.body import read_json
from courier.web.errors import ApiError, json_ok
from courier.web.keys import context_of
from schemas import FieldError

routes = web.RouteTableDef()

ROLE = "dispatcher"
PARAMETERS = "api/dispatch_parameters"
DEFAULT_LIMIT = 50
_INTEGER = re.compile(r"-?[0-9]{1,40}")
_QUERY = ("kind", "open", "limit", "cursor")
_INTEGERS = frozenset({"id", "limit", "cursor"})
_BOOLEANS = frozenset({"open"})


# --------------------------------------------------------------------------------------------
# URL parameters: typed from text, then checked against the same schema the OpenAPI document
# shows, so a bad id, limit or cursor is a 422 naming url.<name>, never a 500 from the database


def parse_params(raw: Mapping[str, str]) -> dict[str, Any]:
    """``raw`` (name → text) as typed values valid against ``schemas/api/dispatch_parameters``;
    else an invalid-fields :class:`ServiceError` with a ``url.<name>`` path per bad one."""
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    for name, text in raw.items():
        if name in _INTEGERS:
            if not _INTEGER.fullmatch(text):
                errors.append(FieldError(f"url.{name}", "must be an integer"))
                continue
            values[name] = int(text)
        elif name in _BOOLEANS:
            if text not in ("true", "false"):
                errors.append(FieldError(f"url.{name}", "must be true or false"))
                continue
            values[name] = text == "true"
        else:
            values[name] = text
    for err in schemas.check(PARAMETERS, values):
        errors.append(FieldError("url." + err.path.removeprefix("$."), err.message))
    if errors:
        raise invalid(errors, "invalid URL parameters")
    return values


def _query(request: web.Request, allowed: tuple[str, ...] = ()) -> dict[str, Any]:
    """The query string's parameters, parsed; an unknown one is refused like an unknown body
    field (a typo such as ``?lmit=10`` must not silently fall back to a default)."""
    unknown = sorted({name for name in request.query if name not in allowed})
    if unknown:
        raise invalid(
            [FieldError(f"url.{name}" if name else "url", "unknown parameter") for name in unknown],
            "invalid URL parameters",
        )
    return parse_params({name: request.query[name] for name in allowed if name in request.query})


def path_id(request: web.Request) -> int:
    """The positive integer ``{id}`` of the URL; any query parameter is refused by name."""
    _query(request)
    value: int = parse_params({"id": request.match_info["id"]})["id"]
    return value


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _unknown_delivery() -> ServiceError:
    return ServiceError(Kind.NOT_FOUND, "unknown_delivery", "no such delivery")


# --------------------------------------------------------------------------------------------
# Views: what leaves the process; never a passport hash or a tracking token hash


def queue_item_view(row: dispatch.QueueRow) -> dict[str, Any]:
    item = row.item
    return {
        "id": item.id,
        "kind": item.kind,
        "detail": item.detail,
        "next_step": item.next_step,
        "delivery_id": item.delivery_id,
        "shipment_id": item.shipment_id,
        "opened_at": iso(item.opened_at),
        "resolved_at": iso(item.resolved_at),
        "resolution": item.resolution,
        "delivery_state": row.delivery_state,
        "application_no": row.application_no,
    }


def destination(code: str) -> dict[str, Any]:
    regency = regions.lookup_regency(code)
    return {
        "regency_code": code,
        "regency_name": regency.name if regency is not None else None,
        "province_name": regency.province.name if regency is not None else None,
    }


def _open_item_view(item: ExceptionItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "kind": item.kind,
        "detail": item.detail,
        "next_step": item.next_step,
        "shipment_id": item.shipment_id,
        "opened_at": iso(item.opened_at),
    }


def _handover_detail_view(found: dispatch.HandoverDetail | None) -> dict[str, Any] | None:
    if found is None:
        return None
    record, proof = found.handover, found.proof
    return {
        "id": record.id,
        "state": record.state,
        "method": record.method,
        "verified": record.verified,
        "verified_at": iso(record.verified_at),
        "confirm_failures": record.confirm_failures,
        "created_at": iso(record.created_at),
        "proof": None
        if proof is None
        else {
            "receiver_name": proof.receiver_name,
            "relation": proof.relation,
            "relation_kind": proof.relation_kind,
            "occurred_at": iso(proof.occurred_at),
        },
    }


def delivery_view(found: dispatch.DeliveryDetail) -> dict[str, Any]:
    delivery, application = found.delivery, found.application
    return {
        "id": delivery.id,
        "application_no": application.application_no,
        "state": delivery.state,
        "reason": delivery.state_reason,
        "collect_by": iso(delivery.collect_by),
        "handed_over_at": iso(delivery.handed_over_at),
        "created_at": iso(delivery.created_at),
        "updated_at": iso(delivery.updated_at),
        "applicant": {"name": application.applicant_name, "phone": application.phone},
        "destination": destination(delivery.destination_regency_code),
        "shipments": [
            {
                "id": s.id,
                "attempt": s.attempt_no,
                "courier": s.courier_code,
                "reference": s.client_reference,
                "waybill": s.waybill,
                "status": s.status,
                "status_reason": s.status_reason,
                "booked_at": iso(s.booked_at),
            }
            for s in found.shipments
        ],
        "events": [
            {
                "shipment_id": e.shipment_id,
                "occurred_at": iso(e.occurred_at),
                "status": e.status,
                "raw_code": e.raw_code,
                "raw_text": e.raw_text,
                "location": e.location,
                "source": e.source,
                "applied": e.applied,
            }
            for e in found.events
        ],
        "custody": [
            {
                "holder": c.holder,
                "holder_ref": c.holder_ref,
                "shipment_id": c.shipment_id,
                "occurred_at": iso(c.occurred_at),
                "recorded_by": c.recorded_by,
                "evidence": c.evidence,
            }
            for c in found.custody
        ],
        "handover": _handover_detail_view(found.handover),
        "open_items": [_open_item_view(i) for i in found.open_items],
    }


def reviewed_view(record: Handover, delivery_state: str) -> dict[str, Any]:
    return {
        "id": record.id,
        "delivery_id": record.delivery_id,
        "state": record.state,
        "method": record.method,
        "verified": record.verified,
        "verified_at": iso(record.verified_at),
        "delivery_state": delivery_state,
    }


# --------------------------------------------------------------------------------------------
# Routes


@routes.get("/api/v1/exceptions")
async def get_exceptions(request: web.Request) -> web.Response:
    principal = await require(request, ROLE)
    params = _query(request, _QUERY)
    ctx = context_of(request)
    async with ctx.sessions() as session:
        page = await dispatch.exceptions_queue(
            session,
            office_id=principal.office_id,
            open_only=params.get("open", True),
            kind=params.get("kind"),
            limit=params.get("limit", DEFAULT_LIMIT),
            before_id=params.get("cursor"),
        )
    return json_ok(
        {"items": [queue_item_view(r) for r in page.rows], "next_cursor": page.next_cursor}
    )


@routes.get("/api/v1/deliveries/{id}")
async def get_delivery(request: web.Request) -> web.Response:
    principal = await require(request, ROLE)
    delivery_id = path_id(request)
    ctx = context_of(request)
    async with ctx.sessions() as session:
        found = await dispatch.delivery_detail(
            session, office_id=principal.office_id, delivery_id=delivery_id
        )
        if found is None:
            raise _unknown_delivery()
        view = delivery_view(found)
    return json_ok(view)


async def acting_person(
    session: AsyncSession, principal: Principal, *, code: str, message: str
) -> int:
    """The staff user behind the caller's token, for acts recorded against a person (a review,
    a manifest's signature); 403 ``code`` when the token is held by no active staff user."""
    person = await dispatch.reviewer_for_token(
        session, token_id=principal.token_id, office_id=principal.office_id
    )
    if person is None:
        raise ApiError(403, code, message)
    return person


@routes.post("/api/v1/handovers/{id}/review")
async def post_review(request: web.Request) -> web.Response:
    principal = await require(request, ROLE)
    handover_id = path_id(request)
    body = await read_json(request, "api/dispatch_review")
    ctx = context_of(request)
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        reviewer = await acting_person(
            session,
            principal,
            code="reviewer_required",
            message="a handover review is signed by a person: use an API token issued to an "
            "active staff user of this office",
        )
        record = await dispatch.handover_of_office(
            session, office_id=principal.office_id, handover_id=handover_id
        )
        if record is None:
            raise ServiceError(Kind.NOT_FOUND, "unknown_handover", "no such handover")
        if await dispatch.waits_for_applicant_only(session, record):
            raise ServiceError(
                Kind.CONFLICT,
                "not_under_review",
                "this handover awaits the applicant's own confirmation and is not under review",
            )
        record = await handover.review(
            session,
            handover_id,
            reviewer,
            bool(body["approve"]),
            str(body["reason"]).strip(),
            now=now,
            office_id=principal.office_id,
        )
        delivery = await session.get_one(Delivery, record.delivery_id)
        view = reviewed_view(record, delivery.state)
    return json_ok(view)


@routes.post("/api/v1/deliveries/{id}/reship")
async def post_reship(request: web.Request) -> web.Response:
    principal = await require(request, ROLE)
    delivery_id = path_id(request)
    await read_json(request, "api/dispatch_action")
    ctx = context_of(request)
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        outcome = await watch.reship(
            session, delivery_id, principal.actor, now=now, office_id=principal.office_id
        )
    return json_ok({"outcome": outcome})


@routes.post("/api/v1/deliveries/{id}/collected")
async def post_collected(request: web.Request) -> web.Response:
    principal = await require(request, ROLE)
    delivery_id = path_id(request)
    await read_json(request, "api/dispatch_action")
    ctx = context_of(request)
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        await watch.collected_at_counter(
            session, delivery_id, principal.actor, now=now, office_id=principal.office_id
        )
    return json_ok({"delivery_id": delivery_id, "state": "collected_at_office"})
