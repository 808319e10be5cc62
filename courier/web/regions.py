"""``GET /api/v1/regions`` and ``GET /api/v1/regions/{code}``: the places one level under a
region code, for the opt-in form's cascading address. Public (no personal data), cached: a
strong ETag from the dataset's digest and the code, ``Cache-Control: public, max-age=86400``,
and 304 for a matching ``If-None-Match``."""

from __future__ import annotations

import json

from aiohttp import web

from courier.services import places
from courier.web.errors import not_found

routes = web.RouteTableDef()

CACHE_CONTROL = "public, max-age=86400"


def _answer(request: web.Request, found: places.Places) -> web.Response:
    etag = f'"{places.dataset_version()}-{found.parent or "root"}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        return web.Response(status=304, headers=headers)
    body = {
        "parent": found.parent,
        "level": found.level,
        "items": [
            {"code": p.code, "name": p.name}
            | ({"postal_code": p.postal_code} if p.postal_code else {})
            for p in found.items
        ],
    }
    return web.Response(
        text=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        content_type="application/json",
        headers=headers,
    )


@routes.get("/api/v1/regions")
async def provinces(request: web.Request) -> web.Response:
    found = places.children(None)
    assert found is not None
    return _answer(request, found)


@routes.get("/api/v1/regions/{code}")
async def children(request: web.Request) -> web.Response:
    found = places.children(request.match_info["code"])
    if found is None:
        raise not_found("no province, regency or district with this code")
    return _answer(request, found)
