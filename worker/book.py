"""The booking loop: claim a bounded batch, book it with bounded concurrency per courier.

Each cycle claims first the shipments stuck in ``booking`` (a worker died mid-call; recovery
goes first so leaked work never waits behind new work), then queued deliveries, best first
(courier/db/queue.py), up to ``concurrency_per_courier × couriers`` rows. Every job runs as its own
task; the courier calls go through a per-courier semaphore, so no courier sees more than
``concurrency_per_courier`` calls from this worker at once. While the batch runs, a renewer
pushes the leases out every third of a lease of service-clock time, so a slow courier never
lets a live job's row be taken over.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import structlog

from adapters.base import (
    Booking,
    Capabilities,
    CourierAdapter,
    PushReply,
    ShipmentOrder,
    TrackingEvent,
    TrackOutcome,
)
from courier.context import AppContext
from courier.db import queue
from courier.services import booking
from worker.backoff import Backoff, is_db_outage
from worker.notify import Waker

log = structlog.get_logger()

JOB_ERROR_DELAY = timedelta(minutes=5)  # a job that crashed on a bug: try again later
# wall seconds between two looks at the service clock while a batch runs (see _renew_forever)
RENEW_NAP_MIN = 0.002
RENEW_NAP_MAX = 1.0


class Throttled:
    """A courier adapter whose ``book`` and ``find`` wait for a slot of the courier's
    semaphore. Everything else passes straight through."""

    def __init__(self, inner: CourierAdapter, slots: asyncio.Semaphore) -> None:
        self.inner = inner
        self.slots = slots
        self.code = inner.code

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    async def book(self, order: ShipmentOrder) -> Booking:
        async with self.slots:
            return await self.inner.book(order)

    async def find(self, reference: str) -> Booking | None:
        async with self.slots:
            return await self.inner.find(reference)

    async def cancel(self, booking: Booking, reason: str) -> None:
        async with self.slots:
            await self.inner.cancel(booking, reason)

    async def track(self, waybills: Sequence[str]) -> Mapping[str, TrackOutcome]:
        return await self.inner.track(waybills)

    def verify_push(self, headers: Mapping[str, str], body: bytes) -> bool:
        return self.inner.verify_push(headers, body)

    def parse_push(self, body: bytes) -> list[TrackingEvent]:
        return self.inner.parse_push(body)

    def push_ack(self, accepted: bool) -> PushReply:
        return self.inner.push_ack(accepted)

    async def close(self) -> None:
        await self.inner.close()


def throttled(ctx: AppContext) -> AppContext:
    """A copy of ``ctx`` whose couriers are throttled per courier."""
    limit = ctx.settings.concurrency_per_courier
    couriers: dict[str, CourierAdapter] = {
        code: Throttled(adapter, asyncio.Semaphore(limit)) for code, adapter in ctx.couriers.items()
    }
    return dataclasses.replace(ctx, couriers=couriers)


def batch_size(ctx: AppContext) -> int:
    return ctx.settings.concurrency_per_courier * max(1, len(ctx.couriers))


async def _renew_forever(ctx: AppContext, worker_id: str) -> None:
    """Push this worker's leases out every third of a lease of *service-clock* time.

    The renewer only watches the clock, it never moves it: it naps on the event loop and looks
    at ``ctx.clock.now()``, renewing once a third of a lease has passed on the clock. Each nap
    is sized from how fast the clock was seen to run (a ScaledClock at 1000× the wall gets
    millisecond naps, the system clock about a second, a clock that only moves when a test
    moves it the longest nap), so any clock works without the renewer knowing its kind, and a
    test's clock stays exactly where the test put it.
    """
    loop = asyncio.get_running_loop()
    interval = timedelta(seconds=ctx.settings.lease_seconds / 3)
    due = ctx.clock.now() + interval
    nap = RENEW_NAP_MIN
    while True:
        seen, woke = ctx.clock.now(), loop.time()
        await asyncio.sleep(nap)
        now = ctx.clock.now()
        if now >= due:
            await _renew(ctx, worker_id, now)
            due = ctx.clock.now() + interval
        # clock seconds per wall second over the last nap: 0 for a clock nobody moves
        rate = (now - seen).total_seconds() / max(loop.time() - woke, 1e-6)
        remaining = (due - ctx.clock.now()).total_seconds()
        nap = RENEW_NAP_MAX if rate <= 0 else remaining / rate / 2  # half: a margin for load
        nap = min(RENEW_NAP_MAX, max(RENEW_NAP_MIN, nap))


async def _renew(ctx: AppContext, worker_id: str, now: datetime) -> None:
    try:
        await queue.renew(
            ctx.sessions, owner=worker_id, now=now, lease_seconds=ctx.settings.lease_seconds
        )
    except Exception as err:
        # the commit-time compare-and-set still protects us; keep trying
        log.warning("worker.renew_failed", exc_type=type(err).__name__, outage=is_db_outage(err))


def _job_failed(err: Exception) -> None:
    if is_db_outage(err):  # waited out by the loop; no traceback for an outage
        log.warning("booking.job_db_unavailable", exc_type=type(err).__name__)
    else:
        log.exception("booking.job_failed", exc_type=type(err).__name__)


async def _job_delivery(ctx: AppContext, worker_id: str, delivery_id: int) -> str:
    with structlog.contextvars.bound_contextvars(job="book", delivery_id=delivery_id):
        try:
            return (await booking.book_delivery(ctx, delivery_id, worker_id)).result
        except Exception as err:
            _job_failed(err)
            if not is_db_outage(err):
                # a bug, not an outage: counted and backed off, a person after a few tries
                with contextlib.suppress(Exception):
                    await booking.delivery_job_failed(ctx, delivery_id, worker_id, err)
                    return "error"
            with contextlib.suppress(Exception):
                await queue.release_deliveries(
                    ctx.sessions,
                    [delivery_id],
                    owner=worker_id,
                    next_attempt_at=ctx.clock.now() + JOB_ERROR_DELAY,
                )
            return "error"


async def _job_shipment(ctx: AppContext, worker_id: str, shipment_id: int) -> str:
    with structlog.contextvars.bound_contextvars(job="reconcile", shipment_id=shipment_id):
        try:
            return (await booking.reconcile_shipment(ctx, shipment_id, worker_id)).result
        except Exception as err:
            _job_failed(err)
            if not is_db_outage(err):
                with contextlib.suppress(Exception):
                    await booking.shipment_job_failed(ctx, shipment_id, worker_id, err)
                    return "error"
            # never straight back into the queue: a job that fails every time would loop hot
            with contextlib.suppress(Exception):
                await queue.release_shipments(
                    ctx.sessions,
                    [shipment_id],
                    owner=worker_id,
                    next_poll_at=ctx.clock.now() + JOB_ERROR_DELAY,
                )
            return "error"


async def cycle(ctx: AppContext, worker_id: str) -> int:
    """Claim one batch and work it to the end. Returns how many rows were claimed."""
    limit = batch_size(ctx)
    now = ctx.clock.now()
    lease = ctx.settings.lease_seconds
    shipment_ids = await queue.claim_stuck_bookings(
        ctx.sessions,
        owner=worker_id,
        now=now,
        lease_seconds=lease,
        limit=limit,
        max_reconciliations=ctx.settings.max_reconciliations,
    )
    delivery_ids = await queue.claim_deliveries(
        ctx.sessions,
        owner=worker_id,
        now=now,
        lease_seconds=lease,
        limit=limit - len(shipment_ids),
    )
    if not shipment_ids and not delivery_ids:
        return 0
    log.debug("booking.claimed", count=len(shipment_ids) + len(delivery_ids))
    renewer = asyncio.create_task(_renew_forever(ctx, worker_id), name="book-renew")
    try:
        async with asyncio.TaskGroup() as tasks:
            for sid in shipment_ids:
                tasks.create_task(_job_shipment(ctx, worker_id, sid))
            for did in delivery_ids:
                tasks.create_task(_job_delivery(ctx, worker_id, did))
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
    return len(shipment_ids) + len(delivery_ids)


async def once(ctx: AppContext, worker_id: str) -> int:
    """One cycle (for ``courier work --once`` and tests)."""
    return await cycle(throttled(ctx), worker_id)


async def run(ctx: AppContext, worker_id: str, stopping: asyncio.Event) -> None:
    """Book until ``stopping`` is set; the batch in hand is finished before returning."""
    ctx = throttled(ctx)
    backoff = Backoff(clock=ctx.clock)
    # After a failed cycle this worker may still hold leases it is not working on: a claim whose
    # commit went through while its answer was lost (the connection broke), or a release that
    # failed. Between cycles nothing of ours is in flight (a batch is finished before the next
    # claim), so they are given back before claiming again instead of waiting out the lease.
    stale = False
    async with Waker(ctx.settings.database_url, ctx.settings.poll_seconds) as waker:
        while not stopping.is_set():
            try:
                if stale:
                    released = await queue.release_held(ctx.sessions, owner=worker_id)
                    stale = False
                    if released:
                        log.info("booking.released_stale_leases", count=released)
                claimed = await cycle(ctx, worker_id)
            except Exception as err:
                stale = True
                if is_db_outage(err):
                    log.warning("worker.db_unavailable", loop="book", exc_type=type(err).__name__)
                else:
                    log.exception("worker.cycle_failed", loop="book")
                await backoff.wait(stopping)
                continue
            backoff.reset()
            if claimed < batch_size(ctx):
                await waker.wait(stopping)
