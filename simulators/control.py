"""The ``/_sim/`` control API: read the order book, move the clock, set faults, force outcomes,
switch real-world variations, read the traffic counts (``GET /_sim/traffic``: API requests per
second and per WIB day, as a courier enforcing a rate and a daily quota counts them).
Not part of any courier's API; never exposed by the real couriers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from simulators.lifecycle import OUTCOMES, Step
from simulators.orders import SimOrder, SimState


def _step_json(step: Step) -> dict[str, Any]:
    return {
        "at": step.at.isoformat(),
        "kind": str(step.kind),
        "location": step.location,
        "receiver": step.receiver,
        "relation": step.relation,
        "reason": step.reason,
    }


def order_json(order: SimOrder, now: datetime) -> dict[str, Any]:
    current = order.current(now)
    return {
        "reference": order.reference,
        "waybill": order.waybill,
        "created_at": order.created_at.isoformat(),
        "cancelled_at": order.cancelled_at.isoformat() if order.cancelled_at else None,
        "destination_regency_code": order.destination_regency_code,
        "current": str(current.kind) if current else None,
        "visible": len(order.visible_steps(now)),
        "steps": [_step_json(s) for s in order.steps],
    }


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise web.HTTPBadRequest(text=f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


def control_routes(state: SimState) -> list[web.RouteDef]:
    """Test/demo controls. Not part of any courier's API; never exposed by the real couriers."""

    async def orders(request: web.Request) -> web.Response:
        now = state.clock.now()
        return web.json_response(
            {
                "now": now.isoformat(),
                "orders": [order_json(o, now) for o in state.orders.values()],
                "create_counts": dict(state.create_counts),
                "calls": dict(state.calls),
            }
        )

    async def clock_get(request: web.Request) -> web.Response:
        return web.json_response({"now": state.clock.now().isoformat()})

    async def clock_advance(request: web.Request) -> web.Response:
        body = await _json_body(request)
        advance = getattr(state.clock, "advance", None)
        if advance is None:
            raise web.HTTPConflict(text="this simulator runs on a clock that cannot be advanced")
        try:
            seconds = float(body["seconds"])
        except (KeyError, TypeError, ValueError):
            raise web.HTTPBadRequest(text='expected {"seconds": <number>}') from None
        if seconds < 0:
            raise web.HTTPBadRequest(text="a clock never goes backwards")
        advance(timedelta(seconds=seconds))
        return web.json_response({"now": state.clock.now().isoformat()})

    async def faults_get(request: web.Request) -> web.Response:
        return web.json_response(state.faults.as_dict())

    async def faults_set(request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            state.faults.configure(body)
        except (ValueError, TypeError, KeyError) as exc:
            raise web.HTTPBadRequest(text=f"bad fault spec: {exc}") from None
        return web.json_response(state.faults.as_dict())

    async def faults_clear(request: web.Request) -> web.Response:
        state.faults.clear()
        return web.json_response(state.faults.as_dict())

    async def outcome_set(request: web.Request) -> web.Response:
        body = await _json_body(request)
        reference, outcome = body.get("reference"), body.get("outcome")
        if not isinstance(reference, str) or outcome not in OUTCOMES:
            raise web.HTTPBadRequest(
                text=f'expected {{"reference": str, "outcome": one of {", ".join(OUTCOMES)}}}'
            )
        state.forced_outcomes[reference] = str(outcome)
        existing = state.orders.get(reference)
        if existing is not None:  # re-plan from its booking time; meant for tests
            existing.steps = state.plan(
                reference, existing.created_at, existing.destination_regency_code
            )
        return web.json_response({"reference": reference, "outcome": outcome})

    return [
        web.get("/_sim/orders", orders),
        web.get("/_sim/clock", clock_get),
        web.post("/_sim/clock/advance", clock_advance),
        web.get("/_sim/faults", faults_get),
        web.post("/_sim/faults", faults_set),
        web.delete("/_sim/faults", faults_clear),
        web.post("/_sim/outcomes", outcome_set),
        *variation_routes(state),
        *traffic_routes(state),
    ]


def variation_routes(state: SimState) -> list[web.RouteDef]:
    """Switch the real world's variations (:mod:`simulators.variations`) on and off."""

    async def variations_get(request: web.Request) -> web.Response:
        return web.json_response(state.variations.as_dict())

    async def variations_set(request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            state.variations.configure(body)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=f"bad variation spec: {exc}") from None
        return web.json_response(state.variations.as_dict())

    async def variations_clear(request: web.Request) -> web.Response:
        state.variations.clear()
        return web.json_response(state.variations.as_dict())

    return [
        web.get("/_sim/variations", variations_get),
        web.post("/_sim/variations", variations_set),
        web.delete("/_sim/variations", variations_clear),
    ]


def traffic_routes(state: SimState) -> list[web.RouteDef]:
    """Read and reset the API request counts (:class:`simulators.orders.Traffic`)."""

    async def traffic_get(request: web.Request) -> web.Response:
        return web.json_response(state.traffic.as_dict())

    async def traffic_clear(request: web.Request) -> web.Response:
        state.traffic.clear()
        return web.json_response(state.traffic.as_dict())

    return [
        web.get("/_sim/traffic", traffic_get),
        web.delete("/_sim/traffic", traffic_clear),
    ]


def install(app: web.Application, state: SimState) -> None:
    """Add the control routes, count the API's traffic and release held replies on shutdown."""

    async def release(_: web.Application) -> None:
        state.closing.set()

    @web.middleware
    async def count_traffic(request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/_sim/"):  # counted on arrival, faulted or not
            state.traffic.count(state.clock.now())
        response: web.StreamResponse = await handler(request)
        return response

    app.middlewares.insert(0, count_traffic)
    app.add_routes(control_routes(state))
    app.on_shutdown.append(release)
