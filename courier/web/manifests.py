"""The pickup manifest API (role ``dispatcher`` or ``admin``), scoped to the token's office.

``POST /api/v1/manifests``                 open the day's manifest of one courier
``GET  /api/v1/manifests/{id}``            the manifest: items, seals, signatures
``POST /api/v1/manifests/{id}/seals``      the seal number of each passport's envelope
``POST /api/v1/manifests/{id}/handover``   both sides sign: the passports go to the courier

Another office's manifest is 404, exactly like one that does not exist (invariant 5). The
manifest is printed and given to the courier, so it carries no applicant names, phones or
addresses: references, waybills, seals and the destination regency only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any

from aiohttp import web

from courier.db.engine import transaction
from courier.services import manifests, pod
from courier.services.errors import invalid
from courier.web.auth import require
from courier.web.body import read_json
from courier.web.dispatch import acting_person, destination, iso, path_id
from courier.web.errors import json_ok
from courier.web.keys import context_of
from schemas import FieldError

routes = web.RouteTableDef()

ROLE = "dispatcher"
# a signature pad's PNG is a few KB; base64 of 40 KB still fits the default 64 KB body limit
MAX_SIGNATURE_BYTES = 40 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def signature_png(text: str) -> bytes:
    """The signature image from its base64 text: a PNG of at most 40 KB; else a field error."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise invalid([FieldError("$.courier_signature", "must be base64")]) from err
    if len(data) > MAX_SIGNATURE_BYTES:
        raise invalid([FieldError("$.courier_signature", "must be at most 40 KB")])
    if not data.startswith(PNG_MAGIC):
        raise invalid([FieldError("$.courier_signature", "must be a PNG image")])
    return data


def manifest_view(found: manifests.ManifestDetail) -> dict[str, Any]:
    m = found.manifest
    return {
        "id": m.id,
        "number": m.number,
        "courier": m.courier_code,
        "state": m.state,
        "created_at": iso(m.created_at),
        "handed_over_at": iso(m.handed_over_at),
        "courier_agent_name": m.courier_agent_name,
        "courier_signature_sha256": m.courier_agent_signature_sha256,
        "office_signer_id": m.office_signer_id,
        "items": [
            {
                "shipment_id": line.shipment.id,
                "delivery_id": line.shipment.delivery_id,
                "reference": line.shipment.client_reference,
                "waybill": line.shipment.waybill,
                "status": line.shipment.status,
                "seal_number": line.item.seal_number,
                "sealed_at": iso(line.item.sealed_at),
                "destination": destination(line.destination_regency_code),
            }
            for line in found.lines
        ],
    }


@routes.post("/api/v1/manifests")
async def post_manifest(request: web.Request) -> web.Response:
    principal = await require(request, ROLE)
    if request.query:
        path_id(request)  # refuses the unknown parameters
    body = await read_json(request, "api/manifest_create")
    ctx = context_of(request)
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        manifest = await manifests.open_manifest(
            session,
            office_id=principal.office_id,
            courier_code=str(body["courier"]),
            actor=principal.actor,
            now=now,
        )
        found = await manifests.manifest_detail(
            session, office_id=principal.office_id, manifest_id=manifest.id
        )
        view = manifest_view(found)
    return json_ok(view, status=201)


@routes.get("/api/v1/manifests/{id}")
async def get_manifest(request: web.Request) -> web.Response:
    principal = await require(request, ROLE)
    manifest_id = path_id(request)
    ctx = context_of(request)
    async with ctx.sessions() as session:
        found = await manifests.manifest_detail(
            session, office_id=principal.office_id, manifest_id=manifest_id
        )
        view = manifest_view(found)
    return json_ok(view)


@routes.post("/api/v1/manifests/{id}/seals")
async def post_seals(request: web.Request) -> web.Response:
    principal = await require(request, ROLE)
    manifest_id = path_id(request)
    body = await read_json(request, "api/manifest_seals")
    seals = [manifests.Seal(int(i["shipment_id"]), str(i["seal_number"])) for i in body["items"]]
    ctx = context_of(request)
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        await manifests.record_seals(
            session,
            office_id=principal.office_id,
            manifest_id=manifest_id,
            seals=seals,
            actor=principal.actor,
            now=now,
        )
        found = await manifests.manifest_detail(
            session, office_id=principal.office_id, manifest_id=manifest_id
        )
        view = manifest_view(found)
    return json_ok(view)


@routes.post("/api/v1/manifests/{id}/handover")
async def post_handover(request: web.Request) -> web.Response:
    principal = await require(request, ROLE)
    manifest_id = path_id(request)
    body = await read_json(request, "api/manifest_handover")
    image = signature_png(str(body["courier_signature"]))
    agent = str(body["courier_agent_name"]).strip()
    ctx = context_of(request)
    now = ctx.clock.now()
    async with ctx.sessions() as session:
        # 404 before anything is written for another office's manifest
        await manifests.manifest_detail(
            session, office_id=principal.office_id, manifest_id=manifest_id
        )
    # content-addressed and idempotent: kept even if the handover is then refused, harmlessly
    digest = await asyncio.to_thread(pod.store_bytes, ctx.settings.pod_store, image)
    async with transaction(ctx.sessions) as session:
        signer = await acting_person(
            session,
            principal,
            code="signer_required",
            message="the office signs a manifest through a person: use an API token issued "
            "to an active staff user of this office",
        )
        await manifests.hand_over(
            session,
            office_id=principal.office_id,
            manifest_id=manifest_id,
            courier_agent_name=agent,
            signature_sha256=digest,
            office_signer_id=signer,
            actor=principal.actor,
            now=now,
        )
        found = await manifests.manifest_detail(
            session, office_id=principal.office_id, manifest_id=manifest_id
        )
        view = manifest_view(found)
    return json_ok(view)
