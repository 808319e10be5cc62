"""J&T pushes through the simulator to our real webhook server, then the inbox loop (both
backends): duplicates are stored once, reordered and late scans never move a status backwards,
and a forged or altered push is refused with 401 and leaves nothing behind."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import tracking_kit as kit_
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from tracking_kit import Kit, make_kit, seed_delivery

from adapters.jnt import codec, push
from courier.db.engine import SessionFactory
from courier.db.models import InboxItem, Proof, Shipment, TrackingEventRow
from worker import book, inbox


async def _sim_push(kit: Kit, **flags: bool) -> dict[str, Any]:
    async with kit.http.post(kit.jnt.make_url("/_sim/push"), json=flags) as resp:
        assert resp.status == 200
        result: dict[str, Any] = await resp.json()
        return result


async def _inbox_rows(sessions: SessionFactory) -> list[InboxItem]:
    async with sessions() as session:
        return list(await session.scalars(select(InboxItem).order_by(InboxItem.id)))


async def _shipment(sessions: SessionFactory) -> Shipment:
    async with sessions() as session:
        shipment = await session.scalar(select(Shipment))
        assert shipment is not None
        return shipment


def _signed(kit: Kit, items: list[dict[str, Any]]) -> tuple[dict[str, str], bytes]:
    opts = kit.jnt_sim.options
    return push.build(items, api_account=opts["api_account"], private_key=opts["private_key"],
                      now=kit.clock.now())


async def _post(kit: Kit, headers: dict[str, str], body: bytes, courier: str = "jnt") -> Any:
    async with kit.http.post(kit.url(f"/webhooks/{courier}"), data=body, headers=headers) as r:
        return r.status, await r.read()


async def test_duplicate_and_reordered_pushes_drive_the_shipment_forward(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with make_kit(engine, sessions, tmp_path, jnt_push=True) as kit:
        _, delivery_id = await seed_delivery(kit, courier="jnt", outcome="delivered_self")
        assert await book.once(kit.ctx, "w1") == 1
        kit.clock.advance(timedelta(hours=20))  # picked up, left the origin office

        sent = await _sim_push(kit, duplicate=True, reorder=True)
        assert sent["acked"] and sent["statuses"] == [200, 200]
        assert len(await _inbox_rows(sessions)) == 1  # the same bytes twice: one row
        assert await inbox.once(kit.ctx, "w1") == 1
        shipment = await _shipment(sessions)
        assert shipment.status == "in_transit"  # newest-first batch, applied in time order

        kit.clock.advance(timedelta(days=2))  # out for delivery and delivered
        sent = await _sim_push(kit, reorder=True)
        assert sent["acked"]
        assert await inbox.once(kit.ctx, "w1") == 1
        assert await inbox.once(kit.ctx, "w1") == 0
        shipment = await _shipment(sessions)
        assert shipment.status == "delivered"
        assert await kit_.delivery_state(kit, delivery_id) == "delivered"
        rows = await _inbox_rows(sessions)
        assert all(r.processed_at is not None and r.error is None for r in rows)
        async with sessions() as session:
            proof = await session.scalar(select(Proof))
        assert proof is not None and all(a["state"] == "stored" for a in proof.artefacts)

        # a late scan (an in-transit scan sent again after the delivery) is kept, not applied
        late = {"billCode": shipment.waybill, "details": [{
            "scanTime": codec.wall_time(kit.clock.now() - timedelta(days=1, hours=1)),
            "scanTypeCode": "20", "scanTypeName": "Departure scan", "desc": "Late scan HUB",
        }]}  # fmt: skip
        status, answer = await _post(kit, *_signed(kit, [late]))
        assert status == 200 and push.is_ack(status, answer)
        assert await inbox.once(kit.ctx, "w1") == 1
        async with sessions() as session:
            stored = await session.scalar(select(TrackingEventRow).where(
                TrackingEventRow.raw_text.contains("Late scan")))
        assert stored is not None and stored.status == "in_transit" and not stored.applied
        assert (await _shipment(sessions)).status == "delivered"


async def test_forged_or_altered_push_is_refused_and_nothing_is_stored(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with make_kit(engine, sessions, tmp_path, jnt_push=True) as kit:
        item = {"billCode": "JO0000000001", "details": [{
            "scanTime": "2026-11-02 10:12:00", "scanTypeCode": "10", "scanTypeName": "Pickup",
            "desc": "Pickup scan",
        }]}  # fmt: skip
        headers, body = _signed(kit, [item])
        forged = {**headers, "digest": "AAAAAAAAAAAAAAAAAAAAAA=="}
        altered = body.replace(b"Pickup", b"Pickop")
        for h, b in ((forged, body), (headers, altered), ({**headers, "apiAccount": "x"}, body)):
            status, answer = await _post(kit, h, b)
            assert status == 401
            assert b'"code": "invalid_signature"' in answer or b'"invalid_signature"' in answer
        # signed, but not a push we can read: J&T's own "fail" answer (it sends it again)
        status, answer = await _post(kit, *_signed(kit, [{"billCode": "JO1"}]))
        assert status == 400 and not push.is_ack(status, answer)
        assert b'"FAIL"' in answer
        async with sessions() as session:
            count = await session.scalar(select(func.count()).select_from(InboxItem))
        assert count == 0

        status, _ = await _post(kit, headers, body)  # the genuine one is accepted
        assert status == 200
        assert len(await _inbox_rows(sessions)) == 1
        # for a waybill we do not know, the row is retried, then closed with a note
        assert await inbox.once(kit.ctx, "w1") == 1
        [row] = await _inbox_rows(sessions)
        assert row.processed_at is None and row.attempts == 1 and "not known" in (row.error or "")


async def test_unknown_courier_and_courier_without_push_are_404(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with make_kit(engine, sessions, tmp_path, jnt_push=True) as kit:
        headers, body = _signed(kit, [])
        for courier in ("dhl", "posind"):
            status, answer = await _post(kit, headers, body, courier)
            assert status == 404 and b'"not_found"' in answer
