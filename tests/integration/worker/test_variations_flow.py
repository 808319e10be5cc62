"""The whole flow with the simulators' real-world variations on (issue 9): booking, push and poll
through the worker and our webhook, to the handover. Push-delivered passports stay confirmable by
the applicant, relatives go to review, and no real-text variation becomes an unmapped code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tracking_kit as kit_
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from tracking_kit import PASSPORT_NO, Kit, make_kit, seed_delivery

from courier.db.engine import SessionFactory
from courier.db.models import ExceptionItem, Handover, Proof
from simulators import posind as pos_sim
from simulators.variations import NAMES
from worker import inbox

# no_lookup belongs to the booking reconciliation tests: no create fault here needs a lookup
EVERY_VARIATION = {"seed": "flow", "rates": {n: 1 for n in NAMES if n != "no_lookup"}}


def _vary(kit: Kit) -> None:
    kit.jnt_sim.state.variations.configure(EVERY_VARIATION)
    kit.pos_app[pos_sim.STATE_KEY].state.variations.configure(EVERY_VARIATION)


async def _handover(kit: Kit, delivery_id: int) -> tuple[Handover, Proof]:
    async with kit.sessions() as session:
        record = await session.scalar(select(Handover).where(Handover.delivery_id == delivery_id))
        assert record is not None
        proof = await session.scalar(select(Proof).where(Proof.shipment_id == record.shipment_id))
        assert proof is not None
        return record, proof


async def _item_kinds(kit: Kit) -> list[str]:
    async with kit.sessions() as session:
        return list(await session.scalars(select(ExceptionItem.kind)))


def _settled(kit: Kit, *delivery_ids: int) -> Any:
    async def check() -> bool:
        states = [await kit_.delivery_state(kit, d) for d in delivery_ids]
        return all(s in ("delivered", "needs_attention") for s in states)

    return check


async def _confirm(kit: Kit, office_id: int, i: int) -> None:
    token = kit_.token(office_id, i)
    async with kit.http.get(kit.url(f"/api/v1/track/{token}")) as resp:
        view = await resp.json()
    assert view["handover"]["can_confirm"] is True
    confirm = kit.url(f"/api/v1/track/{token}/confirm")
    async with kit.http.post(confirm, json={"passport_no": PASSPORT_NO}) as resp:
        assert resp.status == 200, await resp.text()


async def test_jnt_by_push_with_every_variation(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with make_kit(engine, sessions, tmp_path, jnt_push=True) as kit:
        _vary(kit)
        office_id, own = await seed_delivery(kit, courier="jnt", outcome="delivered_self", i=1)
        _, family = await seed_delivery(
            kit, courier="jnt", outcome="delivered_family", i=2, office_id=office_id
        )

        async def pushed() -> None:
            async with kit.http.post(kit.jnt.make_url("/_sim/push"), json={}) as resp:
                assert resp.status == 200
            while await inbox.once(kit.ctx, "w1"):
                pass

        await kit_.drive(kit, _settled(kit, own, family), each=pushed)

        record, proof = await _handover(kit, own)
        assert proof.receiver_name == "Pemohon 1" and proof.relation_kind == "self"
        assert record.state == "awaiting_confirmation"
        await _confirm(kit, office_id, 1)
        assert await kit_.delivery_state(kit, own) == "handed_over"

        record, proof = await _handover(kit, family)
        assert proof.relation_kind == "family" and proof.relation
        assert record.state == "needs_review"
        kinds = await _item_kinds(kit)
        assert "handover_review" in kinds
        assert "unmapped_code" not in kinds and "handover_exception" not in kinds


async def test_pos_with_every_variation(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with make_kit(engine, sessions, tmp_path) as kit:
        _vary(kit)  # includes the respcode/respmsg answer naming
        office_id, own = await seed_delivery(kit, courier="posind", outcome="delivered_self", i=1)
        _, family = await seed_delivery(
            kit, courier="posind", outcome="delivered_family", i=2, office_id=office_id
        )
        _, failed_once = await seed_delivery(
            kit, courier="posind", outcome="fail_once_then_deliver", i=3, office_id=office_id
        )
        await kit_.drive(kit, _settled(kit, own, family, failed_once))

        for delivery_id in (own, failed_once):
            record, proof = await _handover(kit, delivery_id)
            assert record.state == "awaiting_confirmation", proof.relation
        await _confirm(kit, office_id, 1)
        record, proof = await _handover(kit, family)
        assert proof.relation_kind == "family" and record.state == "needs_review"
        kinds = await _item_kinds(kit)
        assert "unmapped_code" not in kinds and "handover_exception" not in kinds
