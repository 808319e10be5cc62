"""Issue 9's "Done when", short: both couriers with every real-world variation on (J&T without
the order lookup, answers in both Pos shapes, text after brackets, relations in notes, returns
without a final scan, duplicated push and poll scans) and 20 % create faults (half of them lost
replies), through booking, push, poll, the inbox and the watchers on one ManualClock.

At rest: no reference has a second order at either courier; every delivery is final, delivered
(waiting for the applicant) or with a person, and every one with a person has an open item; no
open shipment is past its status's limit without an item; a passport delivered to the applicant
can be confirmed by them; relatives go to review. ``make bench`` reports the same run at 200
deliveries (bench/reconcile.py)."""

from __future__ import annotations

from pathlib import Path

import tracking_kit as kit_
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from test_silent_shipments import _unattended
from tracking_kit import PASSPORT_NO, Kit, make_kit, seed_delivery

from courier.db.engine import SessionFactory
from courier.db.models import Delivery, ExceptionItem, Handover, Proof
from courier.domain.states import FINAL_DELIVERY_STATES
from courier.services import watch
from simulators import jnt as jnt_sim
from simulators import posind as pos_sim
from simulators.variations import NAMES
from worker import inbox

PER_COURIER = 12
EVERY_VARIATION = {"seed": "whole-flow", "rates": {n: 1 for n in NAMES}}
# lost replies are held this long (wall) before the connection ends: the client gives up first
CREATE_FAULTS = {
    "endpoints": {
        "create": {"error_rate": 0.1, "timeout_processed_rate": 0.1, "timeout_seconds": 0.3}
    },
    "seed": 9,
}
# a relative and a second attempt for every fourth parcel; the rest as the simulator draws them
SCRIPTS = ("delivered_family", "fail_once_then_deliver", None, None)
AT_REST = {s.value for s in FINAL_DELIVERY_STATES} | {"delivered", "needs_attention"}


async def _fault(kit: Kit) -> None:
    for server in (kit.jnt, kit.posind):
        async with kit.http.post(server.make_url("/_sim/faults"), json=CREATE_FAULTS) as resp:
            assert resp.status == 200, await resp.text()


async def _states(kit: Kit) -> dict[int, str]:
    async with kit.sessions() as session:
        return {d.id: d.state for d in await session.scalars(select(Delivery))}


async def _applicants_confirm(
    kit: Kit, seeded: dict[int, tuple[int, int]], confirmed: set[int]
) -> None:
    """Each applicant whose passport the courier delivered to them confirms with the number
    printed inside, on the tracking page's API, as the page offers."""
    async with kit.sessions() as session:
        due = list(
            await session.execute(
                select(Handover.delivery_id)
                .join(Proof, Proof.shipment_id == Handover.shipment_id)
                .where(Handover.state == "awaiting_confirmation", Proof.relation_kind == "self")
            )
        )
    for (delivery_id,) in due:
        office_id, i = seeded[delivery_id]
        token = kit_.token(office_id, i)
        async with kit.http.get(kit.url(f"/api/v1/track/{token}")) as resp:
            assert (await resp.json())["handover"]["can_confirm"] is True
        confirm = kit.url(f"/api/v1/track/{token}/confirm")
        async with kit.http.post(confirm, json={"passport_no": PASSPORT_NO}) as resp:
            assert resp.status == 200, await resp.text()
        confirmed.add(delivery_id)


async def test_both_couriers_with_every_variation_and_create_faults_come_to_rest(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with make_kit(engine, sessions, tmp_path, jnt_push=True) as kit:
        kit.jnt_sim.state.variations.configure(EVERY_VARIATION)
        kit.pos_app[pos_sim.STATE_KEY].state.variations.configure(EVERY_VARIATION)
        await _fault(kit)
        offices: dict[str, int] = {}
        seeded: dict[int, tuple[int, int]] = {}  # delivery id -> (office id, application i)
        for courier, first in (("jnt", 1), ("posind", 100)):
            for i in range(first, first + PER_COURIER):
                office_id, delivery_id = await seed_delivery(
                    kit,
                    courier=courier,
                    i=i,
                    office_id=offices.get(courier),
                    outcome=SCRIPTS[i % len(SCRIPTS)],
                )
                offices[courier] = office_id
                seeded[delivery_id] = (office_id, i)

        confirmed: set[int] = set()

        async def cycle() -> None:
            await _applicants_confirm(kit, seeded, confirmed)
            await jnt_sim.push_now(kit.jnt_sim)
            while await inbox.once(kit.ctx, "w1"):
                pass
            await watch.scan_all(kit.sessions, now=kit.clock.now())
            assert await _unattended(kit, kit.clock.now()) == []

        async def at_rest() -> bool:
            states = await _states(kit)
            return len(states) == 2 * PER_COURIER and set(states.values()) <= AT_REST

        await kit_.drive(kit, at_rest, each=cycle, max_cycles=800)

        # not one second order for any reference, at either courier
        for server in (kit.jnt, kit.posind):
            async with kit.http.get(server.make_url("/_sim/orders")) as resp:
                orders = (await resp.json())["orders"]
            references = [o["reference"] for o in orders]
            assert len(references) == len(set(references)), server

        states = await _states(kit)
        async with kit.sessions() as session:
            open_items = set(
                await session.scalars(
                    select(ExceptionItem.delivery_id).where(ExceptionItem.resolved_at.is_(None))
                )
            )
            handovers = list(await session.scalars(select(Handover)))
            proofs = {p.shipment_id: p for p in await session.scalars(select(Proof))}
        waiting = {d for d, s in states.items() if s == "needs_attention"}
        assert waiting <= open_items, "a delivery waits for a person without an item"
        assert await _unattended(kit, kit.clock.now()) == []

        # delivered to the applicant (by push or poll): they confirmed on the tracking page
        # as soon as the courier delivered; relatives went to review
        assert confirmed, "no passport delivered to its applicant was confirmable"
        assert all(states[d] == "handed_over" for d in confirmed)
        relatives = [r for r in handovers if proofs[r.shipment_id].relation_kind == "family"]
        kinds_seen = sorted((proofs[r.shipment_id].relation_kind, r.state) for r in handovers)
        assert relatives and all(r.state == "needs_review" for r in relatives), kinds_seen
        kinds = {i.kind for i in await kit_.exceptions(kit)}
        assert "unmapped_code" not in kinds and "handover_exception" not in kinds
