"""Opt-in API for applicants (no staff token: identity is proven by the request itself).

``POST /api/v1/delivery-requests``: 201 with the tracking token and URL when a delivery is
created; 200 with a new token when an existing delivery's address is changed (or its link is
re-issued) before booking. See :mod:`courier.services.optin` for the rules.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from courier.services import optin
from courier.web.body import read_json
from courier.web.keys import context_of

routes = web.RouteTableDef()


def client_address(request: web.Request, trusted_proxies: tuple[str, ...]) -> str:
    """The client's address: the peer, or — when the peer is a trusted proxy — the nearest
    untrusted hop of X-Forwarded-For (a client can prepend anything, never append)."""
    peer = request.remote or "unknown"
    if peer not in trusted_proxies:
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if hop in trusted_proxies:
            continue
        try:
            return str(ipaddress.ip_address(hop))
        except ValueError:
            return peer  # garbage in the header: fall back to the proxy itself
    return peer


@routes.post("/api/v1/delivery-requests")
async def post_delivery_request(request: web.Request) -> web.Response:
    body = await read_json(request, "api/delivery_request", free_text=("$.address.note",))
    ctx = context_of(request)
    result = await optin.opt_in(
        ctx,
        optin.OptInRequest(
            office_code=body["office_code"],
            application_no=body["application_no"],
            date_of_birth=body["date_of_birth"],
            phone=body["phone"],
            address=body["address"],
            email=body.get("email", ""),
            client=client_address(request, ctx.settings.trusted_proxies),
        ),
    )
    payload = {
        "state": result.state,
        "outcome": result.outcome,
        "tracking_token": result.tracking_token,
        "tracking_url": result.tracking_url,
        "collect_by": result.collect_by.isoformat() if result.collect_by else None,
        "eligibility": {
            "code": result.eligibility.code,
            "message_id": result.eligibility.message_id,
            "message_en": result.eligibility.message_en,
        },
    }
    headers = {"Cache-Control": "no-store"}  # the token is shown once: no cache keeps it
    return web.json_response(
        payload, status=201 if result.outcome == "created" else 200, headers=headers
    )
