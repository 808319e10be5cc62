"""The tracking loop: adaptive polling of shipments whose next poll is due.

Each cycle claims a bounded batch of shipments (``next_poll_at`` due, booked and not finished,
lease free) with one atomic ``UPDATE … RETURNING`` over a ``SKIP LOCKED`` sub-select (the
pattern of worker/claim.py), groups them per courier, asks each courier in batches of its
``track_batch_size``, and applies each waybill's events in its own transaction
(courier/services/tracking.py decides the next poll time from the new status). A courier error
for one waybill backs off that shipment only; a failed batch call backs off the batch. Proof of
delivery artefacts of fresh deliveries are fetched at the end of the cycle.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Table, or_, select, update

from adapters.base import CourierAdapter, CourierError, RateLimited, TrackingEvent
from core.status import Status
from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import Shipment
from courier.services import pod, tracking
from worker import claim
from worker.loop import poll_interval, run_periodic

log = structlog.get_logger()

_SHIPMENTS: Table = Shipment.__table__  # type: ignore[assignment]
TRACKED = tuple(
    s.value
    for s in (
        Status.BOOKED,
        Status.PICKED_UP,
        Status.IN_TRANSIT,
        Status.OUT_FOR_DELIVERY,
        Status.DELIVERY_FAILED,
        Status.RETURNING,
    )
)
BATCH = 50
ERROR_BACKOFF = timedelta(minutes=15)  # a courier error for one waybill: ask again later


@dataclass(frozen=True)
class Claimed:
    id: int
    courier_code: str
    waybill: str
    claim_count: int


async def claim_due(
    ctx: AppContext, worker_id: str, *, now: datetime, limit: int = BATCH
) -> list[Claimed]:
    """Lease up to ``limit`` shipments due for a poll, earliest due first."""
    s = _SHIPMENTS
    picked = (
        select(s.c.id)
        .where(
            s.c.status.in_(TRACKED),
            s.c.waybill.is_not(None),
            s.c.next_poll_at.is_not(None),
            s.c.next_poll_at <= now,
            or_(s.c.lease_until.is_(None), s.c.lease_until <= now),
        )
        .order_by(s.c.next_poll_at, s.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED")
    )
    stmt = (
        update(s)
        .where(s.c.id.in_(select(picked.c.id)))
        .values(
            lease_owner=worker_id,
            lease_until=now + timedelta(seconds=ctx.settings.lease_seconds),
            claim_count=s.c.claim_count + 1,
        )
        .returning(s.c.id, s.c.courier_code, s.c.waybill, s.c.claim_count)
    )
    async with transaction(ctx.sessions) as session:
        rows = (await session.execute(stmt)).all()
    return sorted(
        (Claimed(int(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows), key=lambda c: c.id
    )


async def _apply(
    ctx: AppContext, worker_id: str, item: Claimed, events: Sequence[TrackingEvent], pushes: bool
) -> None:
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        shipment = await tracking.lock_shipment(session, item.id)
        if shipment is None or shipment.lease_owner != worker_id:
            return  # our lease was taken over: the new owner polls it
        await tracking.apply_events(
            session, shipment, events, source="poll", now=now, pushes=pushes
        )
        shipment.lease_owner = None
        shipment.lease_until = None


async def _back_off(ctx: AppContext, worker_id: str, item: Claimed, err: CourierError) -> None:
    """Poll this shipment again later (the transport already retried what was safe)."""
    now = ctx.clock.now()
    delay = ERROR_BACKOFF
    if isinstance(err, RateLimited):
        delay = max(delay, timedelta(seconds=err.retry_after))
    async with transaction(ctx.sessions) as session:
        await session.execute(
            update(Shipment)
            .where(Shipment.id == item.id, Shipment.lease_owner == worker_id)
            .values(lease_owner=None, lease_until=None, next_poll_at=now + delay, updated_at=now)
        )
    log.warning(
        "track.courier_error",
        shipment_id=item.id,
        courier=item.courier_code,
        error=type(err).__name__,
        retry_in_s=int(delay.total_seconds()),
    )


async def _track_courier(
    ctx: AppContext, worker_id: str, adapter: CourierAdapter, items: Sequence[Claimed]
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
    claimed = await claim_due(ctx, worker_id, now=ctx.clock.now())
    per_courier: dict[str, list[Claimed]] = defaultdict(list)
    for item in claimed:
        per_courier[item.courier_code].append(item)
    done = 0
    for code, group in per_courier.items():
        adapter = ctx.couriers.get(code)
        if adapter is None:
            log.warning("track.no_adapter", courier=code, shipments=len(group))
            await claim.release_shipments(ctx.sessions, [i.id for i in group], owner=worker_id)
            continue
        with structlog.contextvars.bound_contextvars(job="track", courier=code):
            try:
                done += await _track_courier(ctx, worker_id, adapter, group)
            finally:
                # anything left leased (a bug mid-batch) becomes claimable again at once
                await claim.release_shipments(ctx.sessions, [i.id for i in group], owner=worker_id)
    await pod.fetch_pending(
        ctx.sessions,
        ctx.settings.pod_store,
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
