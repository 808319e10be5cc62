"""The tracking loop: adaptive polling of shipments whose next poll is due.

Each cycle claims a bounded batch of shipments (``next_poll_at`` due, booked and not finished,
lease free) through the queue (courier/db/queue.py), groups them per courier, asks each courier
in batches of its ``track_batch_size``, and applies each waybill's events in its own transaction
(courier/services/polls.py; tracking.py decides the next poll time from the new status). A
courier error for one waybill backs off that shipment only; a failed batch call backs off the
batch. Proof of delivery artefacts of fresh deliveries are fetched at the end of the cycle.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

import structlog

from adapters.base import CourierAdapter, CourierError, RateLimited, TrackingEvent
from courier.context import AppContext
from courier.db import queue
from courier.db.queue import ClaimedPoll
from courier.services import artefacts, pod, polls
from worker.loop import poll_interval, run_periodic

log = structlog.get_logger()

BATCH = 50
ERROR_BACKOFF = timedelta(minutes=15)  # a courier error for one waybill: ask again later


async def _apply(
    ctx: AppContext,
    worker_id: str,
    item: ClaimedPoll,
    events: Sequence[TrackingEvent],
    pushes: bool,
) -> None:
    await polls.record_poll(ctx, item.id, owner=worker_id, events=events, pushes=pushes)


async def _back_off(ctx: AppContext, worker_id: str, item: ClaimedPoll, err: CourierError) -> None:
    """Poll this shipment again later (the transport already retried what was safe)."""
    delay = ERROR_BACKOFF
    if isinstance(err, RateLimited):
        delay = max(delay, timedelta(seconds=err.retry_after))
    await polls.poll_later(ctx, item.id, owner=worker_id, delay=delay)
    log.warning(
        "track.courier_error",
        shipment_id=item.id,
        courier=item.courier_code,
        error=type(err).__name__,
        retry_in_s=int(delay.total_seconds()),
    )


async def _track_courier(
    ctx: AppContext, worker_id: str, adapter: CourierAdapter, items: Sequence[ClaimedPoll]
) -> int:
    size = max(1, adapter.capabilities.track_batch_size)
    pushes = adapter.capabilities.push
    done = 0
    for start in range(0, len(items), size):
        batch = items[start : start + size]
        try:
            outcomes = await adapter.track([i.waybill for i in batch])
        except CourierError as err:
            for item in batch:
                await _back_off(ctx, worker_id, item, err)
            continue
        for item in batch:
            outcome = outcomes.get(item.waybill, [])
            if isinstance(outcome, CourierError):
                await _back_off(ctx, worker_id, item, outcome)
                continue
            await _apply(ctx, worker_id, item, list(outcome), pushes)
            done += 1
    return done


async def once(ctx: AppContext, worker_id: str) -> int:
    """One cycle: claim due shipments, poll them, apply; then fetch pending POD artefacts.
    Returns the number of shipments polled."""
    claimed = await queue.claim_due_polls(
        ctx.sessions,
        owner=worker_id,
        now=ctx.clock.now(),
        lease_seconds=ctx.settings.lease_seconds,
        limit=BATCH,
    )
    per_courier: dict[str, list[ClaimedPoll]] = defaultdict(list)
    for item in claimed:
        per_courier[item.courier_code].append(item)
    done = 0
    for code, group in per_courier.items():
        adapter = ctx.couriers.get(code)
        if adapter is None:
            log.warning("track.no_adapter", courier=code, shipments=len(group))
            await queue.release_shipments(ctx.sessions, [i.id for i in group], owner=worker_id)
            continue
        with structlog.contextvars.bound_contextvars(job="track", courier=code):
            try:
                done += await _track_courier(ctx, worker_id, adapter, group)
            finally:
                # anything left leased (a bug mid-batch) becomes claimable again at once
                await queue.release_shipments(ctx.sessions, [i.id for i in group], owner=worker_id)
    await pod.fetch_pending(
        ctx.sessions,
        artefacts.store(ctx),
        now=ctx.clock.now(),
        origins=pod.allowed_origins(ctx.settings.couriers),
        max_bytes=ctx.settings.pod_max_bytes,
    )
    return done


async def run(ctx: AppContext, worker_id: str, stopping: asyncio.Event) -> None:
    """Poll until ``stopping`` is set; a database outage or a bug is logged and waited out."""
    await run_periodic(
        "track",
        once,
        ctx=ctx,
        worker_id=worker_id,
        stopping=stopping,
        interval=poll_interval(ctx),
    )
