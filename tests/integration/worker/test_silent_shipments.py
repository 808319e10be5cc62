"""No silent shipment goes unnoticed (issue 9, Deliver 5 and "Done when"), both backends: J&T by
push and poll with every real-world variation on (returns without a final scan, duplicated scans,
other reason texts…) and a parcel lost in silence; the worker's loops and the watchers run on one
ManualClock, and after every cycle no shipment is past its status's limit without an open item.
The returns that never get a final scan end in ``return_overdue`` items."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import tracking_kit as kit_
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from tracking_kit import Kit, make_kit, seed_delivery

from core.status import Status
from courier.db.engine import SessionFactory
from courier.db.models import OPEN_SHIPMENT_STATUSES, ExceptionItem, Office, Shipment
from courier.domain.watch import stuck_after
from courier.services import lifecycle, watch
from simulators import jnt as jnt_sim
from simulators.variations import NAMES
from worker import inbox

EVERY_VARIATION = {"seed": "silent", "rates": {n: 1 for n in NAMES if n != "no_lookup"}}
OUTCOMES = ("returned", "lost", "fail_once_then_deliver", "returned", "delivered_family")


async def _unattended(kit: Kit, now: datetime) -> list[str]:
    """Open shipments past their status's limit with no open item about them."""
    async with kit.sessions() as session:
        rows = list(
            await session.scalars(
                select(Shipment).where(Shipment.status.in_(OPEN_SHIPMENT_STATUSES))
            )
        )
        offices = {o.id: o for o in await session.scalars(select(Office))}
        watched = set(
            await session.scalars(
                select(ExceptionItem.shipment_id).where(ExceptionItem.resolved_at.is_(None))
            )
        )
    late = []
    for shipment in rows:
        since = shipment.last_event_at or shipment.booked_at or shipment.created_at
        office = next(iter(offices.values())) if offices else None
        limit = stuck_after(Status(shipment.status), since, lifecycle.pickup_slots(office))
        if limit is not None and limit <= now and shipment.id not in watched:
            late.append(f"shipment {shipment.id} {shipment.status} silent since {since}")
    return late


async def test_every_silent_shipment_gets_an_item_past_its_limit(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with make_kit(engine, sessions, tmp_path, jnt_push=True) as kit:
        kit.jnt_sim.state.variations.configure(EVERY_VARIATION)
        office_id, _ = await seed_delivery(kit, courier="jnt", outcome=OUTCOMES[0], i=1)
        for i, outcome in enumerate(OUTCOMES[1:], start=2):
            await seed_delivery(kit, courier="jnt", outcome=outcome, i=i, office_id=office_id)

        async def cycle() -> None:
            await jnt_sim.push_now(kit.jnt_sim)
            while await inbox.once(kit.ctx, "w1"):
                pass
            await watch.scan_all(kit.sessions, now=kit.clock.now())
            assert await _unattended(kit, kit.clock.now()) == []

        async def settled() -> bool:
            async with kit.sessions() as session:
                statuses = list(await session.scalars(select(Shipment.status)))
                overdue = list(
                    await session.scalars(
                        select(ExceptionItem.shipment_id).where(
                            ExceptionItem.kind == "return_overdue"
                        )
                    )
                )
            returning = statuses.count("returning")
            return (
                len(statuses) == len(OUTCOMES)
                and returning == len(set(overdue)) == 2
                and ("lost" in statuses)
            )

        await kit_.drive(kit, settled, each=cycle, max_cycles=600)
        kinds = {i.kind for i in await kit_.exceptions(kit)}
        assert {"return_overdue", "stuck", "shipment_lost", "handover_review"} <= kinds
        assert "unmapped_code" not in kinds
