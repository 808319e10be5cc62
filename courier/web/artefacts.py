"""``GET /api/v1/deliveries/{id}/artefacts/{sha256}``: a proof-of-delivery photo or signature
the courier sent, as the worker kept it (role ``dispatcher`` or ``admin``, the token's office).

The digest is one the delivery's proof names (``sha256`` of a stored artefact); the bytes come
from the configured artefact store (``storage.artefacts``: the local folder or the database), so
with the database store any ``serve`` shows what any worker fetched. A delivery of another
office, a digest its proof does not name, or bytes not (yet) in the store: 404.
"""

from __future__ import annotations

from aiohttp import web

from courier.services import artefacts
from courier.web.auth import require
from courier.web.dispatch import ROLE, path_id
from courier.web.errors import not_found
from courier.web.keys import context_of

routes = web.RouteTableDef()


@routes.get("/api/v1/deliveries/{id}/artefacts/{sha256}")
async def get_artefact(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    delivery_id = path_id(request)
    found = await artefacts.proof_artefact(
        context_of(request), caller, delivery_id, request.match_info["sha256"]
    )
    if found is None:
        raise not_found("no such proof-of-delivery artefact for this delivery")
    return web.Response(
        body=found.data,
        headers={
            "Content-Type": found.content_type,
            # the courier's file, never rendered as anything else, never kept on the way
            "Content-Disposition": "inline",
            "Cache-Control": "private, no-store",
        },
    )
