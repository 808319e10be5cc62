"""Use cases of the tracking loop (worker/track.py): what a poll found, or "ask again later".

The worker claims shipments through the queue (courier/db/queue.py), asks the courier, and hands
each waybill's answer here; each call is one transaction. Writes are compare-and-set on the
lease: a worker whose lease was taken over changes nothing, the new owner polls the shipment.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import update

from adapters.base import TrackingEvent
from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import Shipment
from courier.services import tracking


async def record_poll(
    ctx: AppContext,
    shipment_id: int,
    *,
    owner: str,
    events: Sequence[TrackingEvent],
    pushes: bool,
) -> bool:
    """Apply a poll's events to a shipment ``owner`` holds and give the lease back. False when
    the lease was taken over meanwhile (nothing written)."""
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        shipment = await tracking.lock_shipment(session, shipment_id)
        if shipment is None or shipment.lease_owner != owner:
            return False
        await tracking.apply_events(
            session, shipment, events, source="poll", now=now, pushes=pushes
        )
        shipment.lease_owner = None
        shipment.lease_until = None
    return True


async def poll_later(ctx: AppContext, shipment_id: int, *, owner: str, delay: timedelta) -> None:
    """Give the lease back and poll this shipment again after ``delay`` (a courier error)."""
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        await session.execute(
            update(Shipment)
            .where(Shipment.id == shipment_id, Shipment.lease_owner == owner)
            .values(lease_owner=None, lease_until=None, next_poll_at=now + delay, updated_at=now)
        )
