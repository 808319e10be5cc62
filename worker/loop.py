"""The one shape of a periodic worker loop (tracking, inbox, watchers).

A cycle is ``once(ctx, worker_id)``, returning how much work it did. A cycle that did work is
followed at once by the next (there may be more); an idle one waits ``interval`` seconds *of the
service clock* (``ctx.clock.sleep``: a fast demo clock waits less wall time, a ManualClock in a
test not at all), or until ``stopping`` is set. A failed cycle is logged and waited out with a
capped exponential backoff on the wall (worker/backoff.py: an outage is measured on the wall,
whatever the clock): a database outage as a warning, anything else with its traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from courier.context import AppContext
from worker.backoff import Backoff, is_db_outage

log = structlog.get_logger()

Cycle = Callable[[AppContext, str], Awaitable[int]]


def poll_interval(ctx: AppContext, at_least: float = 0.0) -> float:
    """Clock seconds for an idle wait: ``worker.poll_seconds`` (wall seconds, as configured)
    expressed on the service clock, and never less than ``at_least`` clock seconds (what the
    loop's own rules need: the watchers count in hours, not seconds). The clock says how fast
    it runs (a ScaledClock's ``speed``; every other clock runs at the wall's pace or is driven):
    a demo at ×40000 must not poll the database 40000 times as often."""
    speed = float(getattr(ctx.clock, "speed", 1.0))
    return max(at_least, ctx.settings.poll_seconds * speed)


async def wait_or_stop(ctx: AppContext, stopping: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds`` of clock time, returning early when ``stopping`` is set."""
    if stopping.is_set():
        return
    sleeper = asyncio.ensure_future(ctx.clock.sleep(seconds))
    stopper = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, stopper):
            task.cancel()
        for task in (sleeper, stopper):
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def run_periodic(
    name: str,
    once: Cycle,
    *,
    ctx: AppContext,
    worker_id: str,
    stopping: asyncio.Event,
    interval: float,
) -> None:
    """Run ``once`` until ``stopping`` is set (see the module doc)."""
    backoff = Backoff()
    while not stopping.is_set():
        try:
            done = await once(ctx, worker_id)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            if is_db_outage(err):
                log.warning("worker.db_unavailable", loop=name, exc_type=type(err).__name__)
            else:
                log.exception("worker.cycle_failed", loop=name, exc_type=type(err).__name__)
            await backoff.wait(stopping)
            continue
        backoff.reset()
        if done == 0:
            await wait_or_stop(ctx, stopping, interval)
        else:
            await asyncio.sleep(0)  # let the other loops of this process run between cycles
