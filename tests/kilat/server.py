"""Kilat's wire API on loopback: it keeps its orders in memory and refuses a reused reference."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from core.clock import Clock

ORDERS_KEY = web.AppKey("orders", dict)


async def _create(request: web.Request) -> web.Response:
    orders: dict[str, str] = request.app[ORDERS_KEY]
    body = await request.json()
    reference = str(body["ref"])
    if body.get("service") != "KLT":  # its one service: the descriptor's default must arrive
        return web.json_response({"error": "unknown service"}, status=422)
    if reference in orders:
        return web.json_response({"error": "duplicate ref"}, status=409)
    orders[reference] = f"KLT{len(orders) + 1:08d}"
    return web.json_response({"awb": orders[reference]}, status=201)


async def _find(request: web.Request) -> web.Response:
    awb = request.app[ORDERS_KEY].get(request.match_info["ref"])
    if awb is None:
        return web.json_response({"error": "not found"}, status=404)
    return web.json_response({"awb": awb})


def create_app(clock: Clock, *, options: dict[str, Any] | None = None) -> web.Application:
    app = web.Application()
    app[ORDERS_KEY] = {}
    app.add_routes([web.post("/orders", _create), web.get("/orders/{ref}", _find)])
    return app


def adapter_settings(base_url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"base_url": base_url}
