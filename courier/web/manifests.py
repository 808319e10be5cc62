"""The pickup manifest API (role ``dispatcher`` or ``admin``), scoped to the token's office.

``POST /api/v1/manifests``                 open the day's manifest of one courier
``GET  /api/v1/manifests/{id}``            the manifest: items, seals, signatures
``POST /api/v1/manifests/{id}/seals``      the seal number of each passport's envelope
``POST /api/v1/manifests/{id}/handover``   both sides sign: the passports go to the courier
``GET  /api/v1/manifests/{id}.pdf``        the manifest printed: masked names, signature lines
``DELETE /api/v1/manifests/{id}/items/{delivery_id}``  take a passport off an open manifest

Another office's manifest is 404, exactly like one that does not exist (invariant 5). The
manifest is printed and given to the courier, so it carries no applicant names, phones or
addresses: references, waybills, seals and the destination regency only.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from courier.services import manifests
from courier.services.errors import ServiceError, invalid
from courier.web import printing
from courier.web.auth import require
from courier.web.body import read_json
from courier.web.dispatch import destination_json, iso, parse_params, path_id
from courier.web.errors import json_ok
from courier.web.keys import context_of
from schemas import FieldError

routes = web.RouteTableDef()

ROLE = "dispatcher"
# a signature pad's PNG is a few KB; base64 of 40 KB still fits the default 64 KB body limit.
# The limit is on the base64 text, as the schema's maxLength says (the same bound, so the schema
# and the server agree): at most 54,616 characters, 40 KB (+2 bytes of a last unpadded group).
MAX_SIGNATURE_BYTES = 40 * 1024
MAX_SIGNATURE_CHARS = -(-MAX_SIGNATURE_BYTES // 3) * 4
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def signature_png(text: str) -> bytes:
    """The signature image from its base64 text: a PNG of at most 40 KB; else a field error."""
    if len(text) > MAX_SIGNATURE_CHARS:
        raise invalid([FieldError("$.courier_signature", "must be at most 40 KB")])
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise invalid([FieldError("$.courier_signature", "must be base64")]) from err
    if not data.startswith(PNG_MAGIC):
        raise invalid([FieldError("$.courier_signature", "must be a PNG image")])
    return data


def manifest_json(found: manifests.ManifestView) -> dict[str, Any]:
    return {
        "id": found.id,
        "number": found.number,
        "courier": found.courier_code,
        "state": found.state,
        "created_at": iso(found.created_at),
        "handed_over_at": iso(found.handed_over_at),
        "courier_agent_name": found.courier_agent_name,
        "courier_signature_sha256": found.courier_signature_sha256,
        "office_signer_id": found.office_signer_id,
        "items": [
            {
                "shipment_id": line.shipment_id,
                "delivery_id": line.delivery_id,
                "reference": line.reference,
                "waybill": line.waybill,
                "status": line.status,
                "seal_number": line.seal_number,
                "sealed_at": iso(line.sealed_at),
                "destination": destination_json(line.destination),
            }
            for line in found.lines
        ],
    }


@routes.post("/api/v1/manifests")
async def post_manifest(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    if request.query:
        path_id(request)  # refuses the unknown parameters
    body = await read_json(request, "api/manifest_create")
    found = await manifests.open_manifest(
        context_of(request), caller, courier_code=str(body["courier"])
    )
    return json_ok(manifest_json(found), status=201)


@routes.get("/api/v1/manifests/{id}.pdf")  # before /{id}: that one would take "7.pdf" as an id
async def get_manifest_pdf(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    manifest_id = path_id(request)
    found = await manifests.sheet(context_of(request), caller, manifest_id)
    return web.Response(
        body=printing.manifest_pdf(found),
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="manifest-{found.number}.pdf"',
            "Cache-Control": "no-store",
        },
    )


@routes.get("/api/v1/manifests/{id}")
async def get_manifest(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    manifest_id = path_id(request)
    found = await manifests.manifest(context_of(request), caller, manifest_id)
    return json_ok(manifest_json(found))


@routes.post("/api/v1/manifests/{id}/seals")
async def post_seals(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    manifest_id = path_id(request)
    body = await read_json(request, "api/manifest_seals")
    seals = [manifests.Seal(int(i["shipment_id"]), str(i["seal_number"])) for i in body["items"]]
    found = await manifests.record_seals(context_of(request), caller, manifest_id, seals)
    return json_ok(manifest_json(found))


@routes.post("/api/v1/manifests/{id}/handover")
async def post_handover(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    manifest_id = path_id(request)
    body = await read_json(request, "api/manifest_handover")
    image = signature_png(str(body["courier_signature"]))
    found = await manifests.hand_over(
        context_of(request),
        caller,
        manifest_id,
        courier_agent_name=str(body["courier_agent_name"]).strip(),
        signature_png=image,
    )
    return json_ok(manifest_json(found))


@routes.delete("/api/v1/manifests/{id}/items/{delivery_id}")
async def delete_manifest_item(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    manifest_id = path_id(request)
    try:
        delivery_id: int = parse_params({"id": request.match_info["delivery_id"]})["id"]
    except ServiceError as err:
        raise invalid([FieldError("url.delivery_id", d.message) for d in err.details]) from err
    body = await read_json(request, "api/manifest_item_remove")
    found = await manifests.remove_item(
        context_of(request), caller, manifest_id, delivery_id, reason=str(body["reason"]).strip()
    )
    return json_ok(manifest_json(found))
