"""The dispatcher's actions on a delivery, packing and labels (role ``dispatcher`` or ``admin``),
scoped to the token's office.

``POST /api/v1/deliveries/{id}/rebook``   book again after a refusal or a cancel (a new attempt)
``POST /api/v1/deliveries/{id}/address``  correct the address (``rebook: true`` books at once)
``PUT  /api/v1/office/sender``            correct the office's sender block
``POST /api/v1/deliveries/{id}/lost``     the courier lost the passport: its report
``GET  /api/v1/packing?application_no=``  the booked passport in hand, typed or scanned
``POST /api/v1/deliveries/{id}/seal``     the envelope's seal number
``GET  /api/v1/deliveries/{id}/label.pdf``  its shipping label
``GET  /api/v1/labels.pdf?date=``         the day's labels in one print

Each route parses, calls one use case and renders its view; another office's delivery is 404,
exactly like one that does not exist (invariant 5).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web

import schemas
from core.clock import to_wib
from courier.services import labels, lost, packing, rebook
from courier.services.errors import invalid
from courier.web import printing
from courier.web.auth import require
from courier.web.body import read_json
from courier.web.dispatch import destination_json, path_id
from courier.web.errors import json_ok
from courier.web.keys import context_of
from schemas import FieldError

routes = web.RouteTableDef()

ROLE = "dispatcher"
PARAMETERS = "api/packing_parameters"


def query(request: web.Request, *names: str, required: bool = True) -> dict[str, str]:
    """The named query parameters, checked against ``api/packing_parameters`` (a scanner's
    surrounding spaces stripped); an unknown or missing one is a 422 naming ``url.<name>``."""
    errors = [
        FieldError(f"url.{name}" if name else "url", "unknown parameter")
        for name in sorted(set(request.query) - set(names))
    ]
    values = {n: request.query[n].strip() for n in names if n in request.query}
    if required:
        errors += [FieldError(f"url.{n}", "required") for n in names if n not in values]
    for err in schemas.check(PARAMETERS, values):
        errors.append(FieldError("url." + err.path.removeprefix("$."), err.message))
    if errors:
        raise invalid(errors, "invalid URL parameters")
    return values


def _pdf(body: bytes, filename: str) -> web.Response:
    return web.Response(
        body=body,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="{filename}"',
            "Cache-Control": "no-store",  # a label carries a name, a phone and an address
        },
    )


def packing_json(found: packing.Packing) -> dict[str, Any]:
    return {
        "delivery_id": found.delivery_id,
        "application_no": found.application_no,
        "applicant_name": found.applicant_name,
        "delivery_state": found.delivery_state,
        "shipment_id": found.shipment_id,
        "courier": found.courier_code,
        "reference": found.reference,
        "waybill": found.waybill,
        "destination": destination_json(found.destination),
        "seal_number": found.seal_number,
        "manifest_id": found.manifest_id,
        "manifest_number": found.manifest_number,
        "manifest_state": found.manifest_state,
        "label_url": f"/api/v1/deliveries/{found.delivery_id}/label.pdf",
    }


@routes.post("/api/v1/deliveries/{id}/rebook")
async def post_rebook(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    delivery_id = path_id(request)
    body = await read_json(request, "api/dispatch_rebook")
    done = await rebook.rebook(
        context_of(request), caller, delivery_id, reason=str(body["reason"]).strip()
    )
    return json_ok(
        {
            "delivery_id": done.delivery_id,
            "delivery_state": done.delivery_state,
            "previous_attempts": done.previous_attempts,
        }
    )


@routes.post("/api/v1/deliveries/{id}/address")
async def post_address(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    delivery_id = path_id(request)
    body = await read_json(request, "api/dispatch_address")
    done = await rebook.correct_address(
        context_of(request),
        caller,
        delivery_id,
        address=body["address"],
        reason=str(body["reason"]).strip(),
        rebook=bool(body.get("rebook", False)),
    )
    return json_ok(
        {
            "delivery_id": done.delivery_id,
            "destination_regency_code": done.destination_regency_code,
            "delivery_state": done.delivery_state,
            "rebooked": done.rebooked,
        }
    )


@routes.put("/api/v1/office/sender")
async def put_sender(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    query(request)
    body = await read_json(request, "api/office_sender")
    done = await rebook.correct_sender(
        context_of(request), caller, sender=body["sender"], reason=str(body["reason"]).strip()
    )
    return json_ok({"office_code": done.office_code, "changed": done.changed})


@routes.post("/api/v1/deliveries/{id}/lost")
async def post_lost(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    delivery_id = path_id(request)
    body = await read_json(request, "api/dispatch_lost", free_text=("$.report_text",))
    ctx = context_of(request)
    try:
        reported_on = date.fromisoformat(str(body["report_date"]))
    except ValueError as err:
        raise invalid([FieldError("$.report_date", "not a real date")]) from err
    if reported_on > to_wib(ctx.clock.now()).date():
        raise invalid([FieldError("$.report_date", "must not be in the future")])
    done = await lost.mark_lost(
        ctx,
        caller,
        delivery_id,
        lost.LostReport(
            number=" ".join(str(body["report_number"]).split()).upper(),
            reported_on=reported_on,
            text=str(body["report_text"]).strip(),
        ),
    )
    return json_ok(
        {
            "delivery_id": done.delivery_id,
            "shipment_id": done.shipment_id,
            "shipment_status": done.shipment_status,
            "delivery_state": done.delivery_state,
            "items_resolved": done.items_resolved,
        }
    )


@routes.get("/api/v1/packing")
async def get_packing(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    params = query(request, "application_no")
    found = await packing.find(context_of(request), caller, params["application_no"])
    return json_ok(packing_json(found))


@routes.post("/api/v1/deliveries/{id}/seal")
async def post_seal(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    delivery_id = path_id(request)
    body = await read_json(request, "api/packing_seal")
    found = await packing.seal(context_of(request), caller, delivery_id, str(body["seal_number"]))
    return json_ok(packing_json(found))


@routes.get("/api/v1/deliveries/{id}/label.pdf")
async def get_label(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    delivery_id = path_id(request)
    found = await labels.label(context_of(request), caller, delivery_id)
    body = printing.labels_pdf([found], title=f"Label {found.waybill}")
    return _pdf(body, f"label-{found.waybill}.pdf")


@routes.get("/api/v1/labels.pdf")
async def get_labels(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    ctx = context_of(request)
    params = query(request, "date", required=False)
    try:
        day = (
            date.fromisoformat(params["date"])
            if "date" in params
            else to_wib(ctx.clock.now()).date()
        )
    except ValueError as err:
        raise invalid([FieldError("url.date", "not a real date")]) from err
    found = await labels.day_labels(ctx, caller, day)
    body = printing.labels_pdf(found, title=f"Labels {day.isoformat()}")
    return _pdf(body, f"labels-{day.isoformat()}.pdf")
