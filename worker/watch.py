"""The watch loop: deadlines (D-10, D-3, expiry), stuck shipments and unconfirmed handovers
(courier/services/watch.py), every ``WATCH_SECONDS``. Scans are idempotent (items are keyed), so
any number of workers may run them; each delivery is its own short transaction."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from courier.context import AppContext
from courier.services import watch
from worker.backoff import Backoff, is_db_outage

log = structlog.get_logger()

WATCH_SECONDS = 60.0  # wall seconds between scans (the rules count in hours and days)


async def once(ctx: AppContext, worker_id: str) -> int:
    """One scan; the number of items opened and deliveries expired."""
    with structlog.contextvars.bound_contextvars(job="watch"):
        return await watch.scan_all(ctx.sessions, now=ctx.clock.now())


async def run(ctx: AppContext, worker_id: str, stopping: asyncio.Event) -> None:
    backoff = Backoff()
    interval = max(WATCH_SECONDS / max(ctx.settings.clock_speed, 1.0), ctx.settings.poll_seconds)
    while not stopping.is_set():
        try:
            await once(ctx, worker_id)
            backoff.reset()
        except Exception as err:
            log.warning("watch.cycle_failed", exc_type=type(err).__name__,
                        outage=is_db_outage(err))
            await backoff.wait(stopping)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=interval)
