"""The inbox loop: courier pushes, verified and stored by the webhook, applied here.

The webhook answers the courier at once and only stores the raw body (courier/web/webhooks.py);
this loop does the work. One inbox row is one transaction: the row is taken with
``FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite serialises writers), parsed again with the
courier's own parser, each waybill's events are applied to its shipment through the same
idempotent path as polling (courier/services/tracking.py), and the row is marked processed.
So two workers never apply one row twice at once, and a crash re-applies it harmlessly.

A body that does not parse is poisoned at once (``attempts`` set to the limit, the reason kept);
a push for a waybill we do not know yet (its booking still committing) is retried a few times,
then closed with a note. A bug or a database outage counts an attempt and is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import CourierError, TrackingEvent
from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import InboxItem
from courier.services import pod, tracking
from worker.backoff import Backoff, is_db_outage

log = structlog.get_logger()

MAX_ATTEMPTS = 5
RETRY_STEP = timedelta(minutes=2)  # attempt n is due n × this after the push arrived
CANDIDATES = 20
MAX_PER_CYCLE = 200


def _due(item: InboxItem, now: datetime) -> bool:
    return item.attempts == 0 or item.received_at + RETRY_STEP * item.attempts <= now


async def _take(session: AsyncSession, now: datetime) -> InboxItem | None:
    result = await session.execute(
        select(InboxItem)
        .where(InboxItem.processed_at.is_(None), InboxItem.attempts < MAX_ATTEMPTS)
        .order_by(InboxItem.attempts, InboxItem.id)
        .limit(CANDIDATES)
        .with_for_update(skip_locked=True)
    )
    for item in result.scalars():
        if _due(item, now):
            return item
    return None


async def _process(ctx: AppContext, session: AsyncSession, item: InboxItem, now: datetime) -> None:
    adapter = ctx.couriers.get(item.courier_code)
    if adapter is None:
        item.attempts += 1
        item.error = f"no adapter configured for {item.courier_code}"
        return
    try:
        events = adapter.parse_push(item.body.encode("utf-8"))
    except CourierError as err:
        item.attempts = MAX_ATTEMPTS  # the body will not change: retrying cannot help
        item.error = str(err)[:500]
        log.warning("inbox.unparseable", inbox_id=item.id, courier=item.courier_code)
        return
    per_waybill: dict[str, list[TrackingEvent]] = defaultdict(list)
    for event in events:
        per_waybill[event.waybill].append(event)
    unknown = 0
    for waybill, group in per_waybill.items():
        shipment = await tracking.find_shipment(session, item.courier_code, waybill)
        if shipment is None:
            unknown += 1
            continue
        await tracking.apply_events(
            session, shipment, group, source="push", now=now, pushes=True
        )
    item.attempts += 1
    if unknown and item.attempts < MAX_ATTEMPTS:
        item.error = f"{unknown} waybill(s) not known yet; will retry"
        return
    item.processed_at = now
    item.error = f"{unknown} waybill(s) unknown" if unknown else None


async def _one(ctx: AppContext) -> bool:
    """Process one due inbox row; False when there is none."""
    now = ctx.clock.now()
    taken: int | None = None
    try:
        async with transaction(ctx.sessions) as session:
            item = await _take(session, now)
            if item is None:
                return False
            taken = item.id
            with structlog.contextvars.bound_contextvars(job="inbox", inbox_id=item.id):
                await _process(ctx, session, item, now)
    except Exception as err:
        if taken is None or is_db_outage(err):
            raise
        # a bug while applying: the transaction rolled back; count the attempt and move on
        log.exception("inbox.failed", inbox_id=taken, exc_type=type(err).__name__)
        async with transaction(ctx.sessions) as session:
            await session.execute(
                update(InboxItem)
                .where(InboxItem.id == taken)
                .values(attempts=InboxItem.attempts + 1, error=type(err).__name__)
            )
    return True


async def once(ctx: AppContext, worker_id: str) -> int:
    """Process due inbox rows (bounded per cycle); then fetch pending POD artefacts."""
    done = 0
    while done < MAX_PER_CYCLE and await _one(ctx):
        done += 1
    if done:
        await pod.fetch_pending(ctx.sessions, ctx.settings.pod_store, now=ctx.clock.now())
    return done


async def run(ctx: AppContext, worker_id: str, stopping: asyncio.Event) -> None:
    backoff = Backoff()
    while not stopping.is_set():
        try:
            done = await once(ctx, worker_id)
            backoff.reset()
        except Exception as err:
            log.warning("inbox.cycle_failed", exc_type=type(err).__name__,
                        outage=is_db_outage(err))
            await backoff.wait(stopping)
            continue
        if done == 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=ctx.settings.poll_seconds)
