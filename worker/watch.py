"""The watch loop: deadlines (D-10, D-3, expiry), stuck shipments and unconfirmed handovers
(courier/services/watch.py), every ``WATCH_SECONDS`` of the service clock. Scans are idempotent
(items are keyed), so any number of workers may run them; each delivery is its own short
transaction."""

from __future__ import annotations

import asyncio

import structlog

from courier.context import AppContext
from courier.services import watch
from worker.loop import poll_interval, run_periodic

log = structlog.get_logger()

WATCH_SECONDS = 60.0  # clock seconds between scans (the rules count in hours and days)


async def once(ctx: AppContext, worker_id: str) -> int:
    """One scan; the number of items opened and deliveries expired."""
    with structlog.contextvars.bound_contextvars(job="watch"):
        return await watch.scan_all(ctx.sessions, now=ctx.clock.now())


async def _scan(ctx: AppContext, worker_id: str) -> int:
    await once(ctx, worker_id)
    return 0  # a scan is never followed at once by another: wait the interval every time


async def run(ctx: AppContext, worker_id: str, stopping: asyncio.Event) -> None:
    await run_periodic(
        "watch",
        _scan,
        ctx=ctx,
        worker_id=worker_id,
        stopping=stopping,
        interval=poll_interval(ctx, at_least=WATCH_SECONDS),
    )
