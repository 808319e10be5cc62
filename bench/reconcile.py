"""Courier calls per booking when the courier misbehaves (issue 9), for each courier: every
real-world variation of the simulators on (J&T's lookup answers HTTP 404, an account without
getOrders; Pos answers in either naming) and a fifth of the creates fail (lost replies, 503,
429, gateway timeouts). The worker's real booking loop runs on a ManualClock that jumps to each
next due retry, so a day of backoffs takes seconds; the courier calls are counted at the
simulator, as the courier would count them (Pos's token requests included).

Figures: calls per booking (the issue's target: at most 3 on average), duplicate orders (0),
bookings left in ``booking`` without an item (0), and how each booking ended.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select

from adapters import registry
from adapters.http import close_shared_session
from bench.booking import seed_queue
from bench.common import settings_for
from core.clock import ManualClock
from courier import logging as courier_logging
from courier.context import AppContext
from courier.db.engine import make_engine, make_sessions
from courier.db.models import ExceptionItem, Shipment
from simulators import jnt as jnt_sim
from simulators import posind as pos_sim
from simulators.orders import SimState
from simulators.variations import NAMES
from worker import book

COURIERS = ("jnt", "posind")
#: every variation, always: the worst the simulators know how to be
EVERY_VARIATION = {"seed": "bench", "rates": {name: 1 for name in NAMES}}

#: the create faults, a fifth in all; lost replies are the case invariant 1 is about
CREATE_FAULTS = {
    "timeout_seconds": 1.0,  # wall: longer than the client waits
    "timeout_processed_rate": 0.08,
    "error_rate": 0.04,
    "rate_limit_rate": 0.04,
    "timeout_rate": 0.04,
}
TRANSPORT = {
    "connect_timeout": 1,
    "read_timeout": 0.3,
    "total_timeout": 0.5,
    "max_attempts": 2,
    "backoff_initial": 0.01,
    "backoff_max": 0.05,
    "requests_per_second": 1000,
}


async def _settle(ctx: AppContext, clock: ManualClock, horizon: timedelta) -> None:
    """The booking loop until nothing is due within ``horizon`` of service-clock time."""
    end = clock.now() + horizon
    while True:
        while await book.once(ctx, "bench"):
            pass
        async with ctx.sessions() as session:
            due = await session.scalar(
                select(Shipment.next_poll_at)
                .where(Shipment.status == "booking", Shipment.next_poll_at.is_not(None))
                .order_by(Shipment.next_poll_at)
                .limit(1)
            )
        if due is None or due > end:
            return
        clock.set(max(due, clock.now()))


async def measure(
    url: str, deliveries: int = 200, *, courier: str = "jnt", quiet: bool = False
) -> dict[str, Any]:
    """Book ``deliveries`` by ``courier`` on the database at ``url`` (migrated, empty) against
    its faulty simulator; the figures above. ``quiet``: the service's log lines go nowhere
    meanwhile (the bench's console is for its table), errors only afterwards."""
    if courier not in COURIERS:
        raise ValueError(f"courier must be one of {COURIERS}, not {courier!r}")
    if not quiet:
        return await _measure(url, deliveries, courier)
    with open(os.devnull, "w", encoding="utf-8") as devnull:  # noqa: ASYNC230 (once, at start)
        courier_logging.configure("warning", "json", stream=devnull)
        try:
            return await _measure(url, deliveries, courier)
        finally:
            courier_logging.configure("error", "json")


async def _measure(url: str, deliveries: int, courier: str) -> dict[str, Any]:
    await seed_queue(url, deliveries, courier=courier)
    clock = ManualClock(datetime.now(UTC))
    options = {
        "variations": EVERY_VARIATION,
        "faults": {"seed": 14, "endpoints": {"create": CREATE_FAULTS}},
    }
    simulator = jnt_sim if courier == "jnt" else pos_sim
    app = simulator.create_app(clock, options=options)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    engine = make_engine(url)
    try:
        courier_settings = {
            **simulator.adapter_settings(f"http://127.0.0.1:{port}/"),
            "transport": TRANSPORT,
        }
        settings = settings_for(
            url, couriers={courier: courier_settings}, worker={"max_reconciliations": 3}
        )
        adapter = registry.create(courier, courier_settings, clock=clock)
        ctx = AppContext(settings, engine, make_sessions(engine), clock, {courier: adapter})
        started = clock.now()
        await _settle(ctx, clock, timedelta(days=1))
        async with ctx.sessions() as session:
            ships = list(await session.scalars(select(Shipment)))
            parked_items = set(
                await session.scalars(
                    select(ExceptionItem.shipment_id).where(ExceptionItem.resolved_at.is_(None))
                )
            )
            kinds = Counter(
                await session.scalars(
                    select(ExceptionItem.kind).where(ExceptionItem.resolved_at.is_(None))
                )
            )
        state = sim_state(app, courier)
        calls = dict(state.calls)
        # one order per application: the reference is office + application + attempt (2 digits)
        per_application = Counter(ref[:-2] for ref in state.orders)
        return {
            "courier": courier,
            "deliveries": deliveries,
            "calls": calls,
            "calls_per_booking": sum(calls.values()) / deliveries,
            "duplicate_orders": sum(n - 1 for n in per_application.values() if n > 1),
            "booked": sum(s.status == "booked" for s in ships),
            "to_person": dict(kinds),
            "in_booking_without_item": sum(
                s.status == "booking" and s.id not in parked_items for s in ships
            ),
            "service_clock_minutes": round((clock.now() - started).total_seconds() / 60, 1),
        }
    finally:
        await close_shared_session()
        await engine.dispose()
        await runner.cleanup()


def sim_state(app: web.Application, courier: str) -> SimState:
    """The simulator's order book and call counts (``/_sim/orders`` without the HTTP)."""
    if courier == "jnt":
        return app[jnt_sim.SIM_KEY].state
    return app[pos_sim.STATE_KEY].state
