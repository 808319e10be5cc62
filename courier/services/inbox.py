"""Applying courier pushes kept in the inbox: the use case the inbox loop (worker/inbox.py) runs.

The webhook answers the courier at once and only stores the raw body (courier/web/webhooks.py);
this is where the work happens. Rows due now (``next_attempt_at`` empty or past: the filter is
SQL, so rows waiting for a later try never hide a due one) are taken a few at a time with
``FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite serialises writers; courier/db/queue.py), so
another worker takes the next few. Each row is parsed again with the courier's own parser and
each waybill's events are applied to its shipment through the same idempotent path as polling
(courier/services/tracking.py), inside a savepoint: a bug in one row rolls back that row only.
* A body that does not parse is poisoned at once (``attempts`` set to the limit, the reason kept).
* A push for a waybill we do not know yet (its booking has not recorded the waybill: the courier
  may push before our create call returns, or booking is waiting out a courier outage) is tried
  again later, the waits growing exponentially up to a day (the one backoff policy,
  core/backoff.py); after :data:`UNKNOWN_GIVE_UP` the row is closed and an exception item
  tells dispatch (of every office using that courier: the waybill is not ours
  to place), never silently.
* A bug counts an attempt and is retried after the same kind of wait, up to
  :data:`MAX_ATTEMPTS`; a database outage is raised to the loop, which waits it out.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import CourierError, TrackingEvent
from core.backoff import exponential_backoff
from courier.context import AppContext
from courier.db import queue
from courier.db.engine import transaction
from courier.db.models import InboxItem, Office, Shipment
from courier.db.outage import is_db_outage
from courier.domain.exception_kinds import ExceptionKind
from courier.services import items, tracking

log = structlog.get_logger()

MAX_ATTEMPTS = 16  # tries of one row in all; a poisoned row is set straight to this
# rows taken per transaction (each in its own savepoint): the claim, BEGIN and COMMIT are
# shared by the batch, and a transaction still holds its shipments' locks only briefly. Several
# transactions of one worker at once were tried and dropped: two of them locking the same two
# shipments in opposite order deadlock, and a deadlocked row waits a minute for its retry
BATCH = 10
# waits between tries (clock seconds): 1, 2, 4 … minutes (plus up to a minute), at most a day
RETRY_FIRST = 60.0
RETRY_CAP = 24 * 3600.0
# how long a push may wait for its waybill to be recorded by booking before dispatch is told
UNKNOWN_GIVE_UP = timedelta(days=2)


def retry_at(attempts: int, now: datetime) -> datetime:
    """When to try a row again after its ``attempts``-th failed try (1-based)."""
    delay = exponential_backoff(
        attempts - 1, initial=RETRY_FIRST, cap=RETRY_CAP, jitter=RETRY_FIRST
    )
    return now + timedelta(seconds=delay)


Parsed = list[TrackingEvent] | CourierError | None  # None: no adapter for the courier


def _parse(ctx: AppContext, item: InboxItem) -> Parsed:
    adapter = ctx.couriers.get(item.courier_code)
    if adapter is None:
        return None
    try:
        return list(adapter.parse_push(item.body.encode("utf-8")))
    except CourierError as err:
        return err


async def _lock_in_order(
    session: AsyncSession, taken: list[InboxItem], parsed: list[Parsed]
) -> None:
    """Lock every shipment the batch will touch, in id order, before touching any. Two workers
    whose batches share parcels would otherwise lock them in the order their rows list them and
    deadlock (found by `make chaos`); in one order, the second simply waits for the first."""
    pairs = {
        (item.courier_code, event.waybill)
        for item, events in zip(taken, parsed, strict=True)
        if isinstance(events, list)
        for event in events
    }
    if len(pairs) < 2:
        return  # one shipment: nothing to order
    await session.execute(
        select(Shipment.id)
        .where(tuple_(Shipment.courier_code, Shipment.waybill).in_(sorted(pairs)))
        .order_by(Shipment.id)
        .with_for_update()
    )


async def _process(
    ctx: AppContext, session: AsyncSession, item: InboxItem, now: datetime, parsed: Parsed
) -> None:
    if parsed is None:
        item.attempts += 1
        item.error = f"no adapter configured for {item.courier_code}"
        item.next_attempt_at = retry_at(item.attempts, now)
        return
    if isinstance(parsed, CourierError):
        err = parsed
        item.attempts = MAX_ATTEMPTS  # the body will not change: retrying cannot help
        log.warning("inbox.unparseable", inbox_id=item.id, courier=item.courier_code)
        await _give_up(session, item, now, f"not a push we can read: {err.message}"[:500])
        return
    events = parsed
    per_waybill: dict[str, list[TrackingEvent]] = defaultdict(list)
    for event in events:
        per_waybill[event.waybill].append(event)
    unknown: list[str] = []
    for waybill, group in per_waybill.items():
        shipment = await tracking.find_shipment(session, item.courier_code, waybill)
        if shipment is None:
            unknown.append(waybill)
            continue
        await tracking.apply_events(session, shipment, group, source="push", now=now, pushes=True)
    item.attempts += 1
    if not unknown:
        item.processed_at = now
        item.error = None
        item.next_attempt_at = None
        return
    waited = now - item.received_at
    if waited < UNKNOWN_GIVE_UP and item.attempts < MAX_ATTEMPTS:
        item.error = f"{len(unknown)} waybill(s) not known yet; will retry"
        item.next_attempt_at = retry_at(item.attempts, now)
        return
    item.processed_at = now
    item.next_attempt_at = None
    item.error = f"{len(unknown)} waybill(s) unknown after {item.attempts} tries; dispatch told"
    await _unknown_waybills(session, item, unknown, now)
    log.warning(
        "inbox.unknown_waybills", inbox_id=item.id, courier=item.courier_code, count=len(unknown)
    )


async def _give_up(session: AsyncSession, item: InboxItem, now: datetime, why: str) -> None:
    """Stop retrying a push and say so: the row is closed (it no longer counts as inbox lag)
    with its reason, and dispatch of every office using the courier gets an item (invariant 3:
    a push we cannot apply is reported, never silently dropped)."""
    item.processed_at = now
    item.next_attempt_at = None
    item.error = why
    offices = (
        await session.scalars(select(Office.id).where(Office.courier_code == item.courier_code))
    ).all()
    for office_id in offices:
        await items.open_exception(
            session,
            office_id=office_id,
            kind=ExceptionKind.INBOX_UNPROCESSABLE,
            detail=f"a {item.courier_code} push could not be applied (inbox row {item.id}): {why}",
            dedupe_key=f"inbox_dead:{item.id}:{office_id}",
            now=now,
        )


async def _unknown_waybills(
    session: AsyncSession, item: InboxItem, waybills: list[str], now: datetime
) -> None:
    """Tell dispatch of every office using this courier: none of our shipments carries these
    waybills (a booking that never recorded its answer, or a push meant for someone else)."""
    offices = (
        await session.scalars(select(Office.id).where(Office.courier_code == item.courier_code))
    ).all()
    shown = ", ".join(waybills[:5]) + (" …" if len(waybills) > 5 else "")
    for office_id in offices:
        await items.open_exception(
            session,
            office_id=office_id,
            kind=ExceptionKind.PUSH_UNKNOWN_WAYBILL,
            detail=f"{item.courier_code} pushed tracking for waybill(s) no shipment of ours "
            f"carries after {UNKNOWN_GIVE_UP.days} days: {shown} (inbox row {item.id})",
            dedupe_key=f"inbox_unknown:{item.id}:{office_id}",
            now=now,
        )


async def apply_due_pushes(ctx: AppContext) -> int:
    """Apply up to :data:`BATCH` due inbox rows in one transaction; the number taken."""
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        taken = list(
            await queue.take_inbox(session, now=now, limit=BATCH, max_attempts=MAX_ATTEMPTS)
        )
        parsed = [_parse(ctx, item) for item in taken]
        await _lock_in_order(session, taken, parsed)
        for item, events in zip(taken, parsed, strict=True):
            item_id, attempts = item.id, item.attempts
            with structlog.contextvars.bound_contextvars(job="inbox", inbox_id=item_id):
                try:
                    async with session.begin_nested():
                        await _process(ctx, session, item, now, events)
                except Exception as err:
                    if is_db_outage(err):
                        raise
                    # a bug while applying: this row's savepoint rolled back; count the try
                    log.exception("inbox.failed", inbox_id=item_id, exc_type=type(err).__name__)
                    await session.execute(
                        update(InboxItem)
                        .where(InboxItem.id == item_id)
                        .values(
                            attempts=attempts + 1,
                            error=type(err).__name__,
                            next_attempt_at=retry_at(attempts + 1, now),
                        )
                    )
                    if attempts + 1 >= MAX_ATTEMPTS:
                        row = await session.get_one(InboxItem, item_id)
                        await _give_up(
                            session, row, now, f"failed {MAX_ATTEMPTS} times: {type(err).__name__}"
                        )
        return len(taken)
