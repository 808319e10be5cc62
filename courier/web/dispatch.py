"""The dispatcher's staff API (role ``dispatcher`` or ``admin``), scoped to the token's office.

``GET  /api/v1/exceptions``                 the exceptions queue (open by default), newest first
``GET  /api/v1/deliveries/{id}``            one delivery as a dispatcher acts on it
``POST /api/v1/handovers/{id}/review``      approve or refuse a handover under review
``POST /api/v1/deliveries/{id}/reship``     re-ship a returned passport, or keep it at the counter
``POST /api/v1/deliveries/{id}/collected``  the applicant collected the passport at the counter
``POST /api/v1/deliveries/{id}/booking/waybill``  a booking left in doubt was found in the
                                            courier's portal: record its waybill
``POST /api/v1/deliveries/{id}/booking/release``  it was not: close the attempt, book anew
``POST /api/v1/deliveries/{id}/cancel``     cancel a booked shipment, then re-book or counter
``POST /api/v1/deliveries/{id}/returned-to-office``  the envelope is back without a return scan

Every id outside the caller's office is 404, exactly like one that does not exist (invariant 5).
Each route parses, calls one use case of :mod:`courier.services.dispatch` and renders its view.
The queue carries no applicant names, phones or addresses: it is shown on shared screens; the
delivery view has the name and phone (the dispatcher calls them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

import schemas
from courier.services import cancel, dispatch, stuck_booking
from courier.services.errors import invalid
from courier.web.auth import require
from courier.web.body import read_json
from courier.web.errors import json_ok
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


# --------------------------------------------------------------------------------------------
# Rendering: the use cases' views as the API's JSON


def destination_json(found: dispatch.Destination) -> dict[str, Any]:
    return {
        "regency_code": found.regency_code,
        "regency_name": found.regency_name,
        "province_name": found.province_name,
    }


def queue_item_json(item: dispatch.ItemView) -> dict[str, Any]:
    return {
        "id": item.id,
        "kind": item.kind,
        "detail": item.detail,
        "next_step": item.next_step,
        "next_step_en": item.next_step_en,
        "delivery_id": item.delivery_id,
        "shipment_id": item.shipment_id,
        "opened_at": iso(item.opened_at),
        "resolved_at": iso(item.resolved_at),
        "resolution": item.resolution,
        "delivery_state": item.delivery_state,
        "application_no": item.application_no,
    }


def _open_item_json(item: dispatch.ItemView) -> dict[str, Any]:
    return {
        "id": item.id,
        "kind": item.kind,
        "detail": item.detail,
        "next_step": item.next_step,
        "next_step_en": item.next_step_en,
        "shipment_id": item.shipment_id,
        "opened_at": iso(item.opened_at),
    }


def _handover_json(found: dispatch.HandoverView | None) -> dict[str, Any] | None:
    if found is None:
        return None
    proof = found.proof
    return {
        "id": found.id,
        "state": found.state,
        "method": found.method,
        "verified": found.verified,
        "verified_at": iso(found.verified_at),
        "confirm_failures": found.confirm_failures,
        "created_at": iso(found.created_at),
        "proof": None
        if proof is None
        else {
            "receiver_name": proof.receiver_name,
            "relation": proof.relation,
            "relation_kind": proof.relation_kind,
            "occurred_at": iso(proof.occurred_at),
        },
    }


def delivery_json(found: dispatch.DeliveryView) -> dict[str, Any]:
    return {
        "id": found.id,
        "application_no": found.application_no,
        "state": found.state,
        "reason": found.reason,
        "collect_by": iso(found.collect_by),
        "handed_over_at": iso(found.handed_over_at),
        "created_at": iso(found.created_at),
        "updated_at": iso(found.updated_at),
        "applicant": {"name": found.applicant_name, "phone": found.phone},
        "destination": destination_json(found.destination),
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
                "sources": list(e.sources),
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
        "handover": _handover_json(found.handover),
        "open_items": [_open_item_json(i) for i in found.open_items],
    }


def reviewed_json(found: dispatch.ReviewedHandover) -> dict[str, Any]:
    return {
        "id": found.id,
        "delivery_id": found.delivery_id,
        "state": found.state,
        "method": found.method,
        "verified": found.verified,
        "verified_at": iso(found.verified_at),
        "delivery_state": found.delivery_state,
    }


# --------------------------------------------------------------------------------------------
# Routes


@routes.get("/api/v1/exceptions")
async def get_exceptions(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    params = _query(request, _QUERY)
    page = await dispatch.exceptions_queue(
        context_of(request),
        caller,
        open_only=params.get("open", True),
        kind=params.get("kind"),
        limit=params.get("limit", DEFAULT_LIMIT),
        before_id=params.get("cursor"),
    )
    return json_ok(
        {"items": [queue_item_json(i) for i in page.items], "next_cursor": page.next_cursor}
    )


@routes.get("/api/v1/deliveries/{id}")
async def get_delivery(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    delivery_id = path_id(request)
    found = await dispatch.delivery_detail(context_of(request), caller, delivery_id)
    return json_ok(delivery_json(found))


@routes.post("/api/v1/handovers/{id}/review")
async def post_review(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    handover_id = path_id(request)
    body = await read_json(request, "api/dispatch_review", free_text=("$.reason",))
    found = await dispatch.review_handover(
        context_of(request),
        caller,
        handover_id,
        approve=bool(body["approve"]),
        reason=str(body["reason"]).strip(),
    )
    return json_ok(reviewed_json(found))


@routes.post("/api/v1/deliveries/{id}/reship")
async def post_reship(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    delivery_id = path_id(request)
    await read_json(request, "api/dispatch_action")
    outcome = await dispatch.reship(context_of(request), caller, delivery_id)
    return json_ok({"outcome": outcome})


@routes.post("/api/v1/deliveries/{id}/collected")
async def post_collected(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    delivery_id = path_id(request)
    body = await read_json(request, "api/dispatch_collected")
    done = await dispatch.collected_at_counter(
        context_of(request),
        caller,
        delivery_id,
        dispatch.IdentityShown(str(body["id_type"]), str(body["id_number"])),
    )
    return json_ok({"delivery_id": done.delivery_id, "state": done.state})


@routes.post("/api/v1/deliveries/{id}/cancel")
async def post_cancel(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    delivery_id = path_id(request)
    body = await read_json(request, "api/dispatch_cancel")
    done = await cancel.cancel_shipment(
        context_of(request),
        caller,
        delivery_id,
        reason=str(body["reason"]).strip(),
        then=str(body["then"]),
    )
    return json_ok(
        {
            "delivery_id": done.delivery_id,
            "shipment_id": done.shipment_id,
            "courier_confirmed": done.courier_confirmed,
            "then": done.then,
            "delivery_state": done.delivery_state,
        }
    )


@routes.post("/api/v1/deliveries/{id}/returned-to-office")
async def post_returned_to_office(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    delivery_id = path_id(request)
    body = await read_json(request, "api/dispatch_returned")
    done = await dispatch.returned_to_office(
        context_of(request),
        caller,
        delivery_id,
        seal_intact=bool(body["seal_intact"]),
        note=str(body.get("note", "")).strip(),
        seal_number=str(body["seal_number"]) if "seal_number" in body else None,
    )
    return json_ok(
        {
            "delivery_id": done.delivery_id,
            "shipment_id": done.shipment_id,
            "delivery_state": done.delivery_state,
            "seal_number": done.seal_number,
            "seal_matches": done.seal_matches,
        }
    )


@routes.post("/api/v1/deliveries/{id}/booking/waybill")
async def post_booking_waybill(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    delivery_id = path_id(request)
    body = await read_json(request, "api/dispatch_booking_waybill")
    done = await stuck_booking.record_waybill(
        context_of(request),
        caller,
        delivery_id,
        waybill=str(body["waybill"]),
        note=str(body.get("note", "")).strip(),
    )
    return json_ok(
        {
            "delivery_id": done.delivery_id,
            "shipment_id": done.shipment_id,
            "reference": done.reference,
            "shipment_status": done.status,
            "waybill": done.waybill,
            "delivery_state": done.delivery_state,
        }
    )


@routes.post("/api/v1/deliveries/{id}/booking/release")
async def post_booking_release(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    delivery_id = path_id(request)
    body = await read_json(request, "api/dispatch_booking_release")
    done = await stuck_booking.release_booking(
        context_of(request), caller, delivery_id, reason=str(body["reason"]).strip()
    )
    return json_ok(
        {
            "delivery_id": done.delivery_id,
            "shipment_id": done.shipment_id,
            "reference": done.reference,
            "shipment_status": "booking_failed",
            "waybill": None,
            "delivery_state": done.delivery_state,
        }
    )
