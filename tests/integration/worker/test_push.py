"""J&T pushes through the simulator to our real webhook server, then the inbox loop (both
backends): duplicates are stored once, reordered and late scans never move a status backwards,
and a forged or altered push is refused with 401 and leaves nothing behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import tracking_kit as kit_
import worker_seed as seed
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from tracking_kit import Kit, make_kit, seed_delivery

from adapters.base import TrackingEvent
from adapters.jnt import codec, push
from core.status import Status
from courier.db.engine import SessionFactory, transaction
from courier.db.models import InboxItem, Proof, Shipment, TrackingEventRow
from courier.services import inbox as applying
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
    return push.build(
        items, api_account=opts["api_account"], private_key=opts["private_key"], now=kit.clock.now()
    )


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
        late = {
            "billCode": shipment.waybill,
            "details": [
                {
                    "scanTime": codec.wall_time(kit.clock.now() - timedelta(days=1, hours=1)),
                    "scanTypeCode": "20",
                    "scanTypeName": "Departure scan",
                    "desc": "Late scan HUB",
                }
            ],
        }
        status, answer = await _post(kit, *_signed(kit, [late]))
        assert status == 200 and push.is_ack(status, answer)
        assert await inbox.once(kit.ctx, "w1") == 1
        async with sessions() as session:
            stored = await session.scalar(
                select(TrackingEventRow).where(TrackingEventRow.raw_text.contains("Late scan"))
            )
        assert stored is not None and stored.status == "in_transit" and not stored.applied
        assert (await _shipment(sessions)).status == "delivered"


async def test_forged_or_altered_push_is_refused_and_nothing_is_stored(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with make_kit(engine, sessions, tmp_path, jnt_push=True) as kit:
        item = {
            "billCode": "JO0000000001",
            "details": [
                {
                    "scanTime": "2026-11-02 10:12:00",
                    "scanTypeCode": "10",
                    "scanTypeName": "Pickup",
                    "desc": "Pickup scan",
                }
            ],
        }
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


def _pickup(waybill: str, at: datetime) -> dict[str, Any]:
    return {
        "billCode": waybill,
        "details": [
            {
                "scanTime": codec.wall_time(at),
                "scanTypeCode": "10",
                "scanTypeName": "Pickup",
                "desc": "Pickup scan",
            }
        ],
    }


async def _row(sessions: SessionFactory, row_id: int) -> InboxItem:
    async with sessions() as session:
        row = await session.get(InboxItem, row_id)
        assert row is not None
        return row


async def test_a_due_push_is_not_hidden_behind_rows_waiting_for_a_later_try(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    """Rows waiting for their next try are filtered in SQL: however many there are, a due row
    behind them is taken in the same cycle."""
    async with make_kit(engine, sessions, tmp_path, jnt_push=True) as kit:
        _, delivery_id = await seed_delivery(kit, courier="jnt")
        shipment_id = await kit_.booked_shipment(sessions, delivery_id, waybill="JOKNOWN0001")
        now = kit.clock.now()
        async with transaction(sessions) as session:
            for i in range(applying.BATCH * 6):  # more waiting rows than any batch or old window
                _, body = _signed(kit, [_pickup(f"JOWAIT{i:05d}", now)])
                session.add(
                    InboxItem(
                        courier_code="jnt",
                        dedupe_key=f"wait{i}",
                        body=body.decode(),
                        received_at=now,
                        attempts=1,
                        error="not known yet",
                        next_attempt_at=now + timedelta(hours=1),
                    )
                )
            _, body = _signed(kit, [_pickup("JOKNOWN0001", now - timedelta(minutes=30))])
            due = InboxItem(
                courier_code="jnt",
                dedupe_key="due",
                body=body.decode(),
                received_at=now - timedelta(hours=1),
                attempts=1,
                error="not known yet",
                next_attempt_at=now - timedelta(minutes=1),
            )
            session.add(due)
        assert await inbox.once(kit.ctx, "w1") == 1
        row = await _row(sessions, due.id)
        assert row.processed_at == now and row.error is None
        async with sessions() as session:
            shipment = await session.get(Shipment, shipment_id)
            waiting = await session.scalar(
                select(func.count())
                .select_from(InboxItem)
                .where(InboxItem.processed_at.is_(None), InboxItem.attempts == 1)
            )
        assert shipment is not None and shipment.status == "picked_up"
        assert waiting == applying.BATCH * 6  # untouched: not due


async def test_push_before_the_waybill_is_recorded_waits_with_growing_delays(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    """J&T pushes the pickup of a parcel whose booking has not recorded its waybill yet (a
    courier outage held the booking's answer for hours): the push waits, then applies."""
    async with make_kit(engine, sessions, tmp_path, jnt_push=True) as kit:
        _, delivery_id = await seed_delivery(kit, courier="jnt")
        received = kit.clock.now()
        status, _ = await _post(kit, *_signed(kit, [_pickup("JOLATE00001", received)]))
        assert status == 200
        [row] = await _inbox_rows(sessions)
        waits: list[timedelta] = []
        recorded = False
        while row.processed_at is None:
            assert await inbox.once(kit.ctx, "w1") == 1
            row = await _row(sessions, row.id)
            if row.processed_at is not None:
                break
            assert row.next_attempt_at is not None and "not known" in (row.error or "")
            waits.append(row.next_attempt_at - kit.clock.now())
            assert await inbox.once(kit.ctx, "w1") == 0  # nothing due before its time
            kit.clock.set(row.next_attempt_at)
            if not recorded and kit.clock.now() - received >= timedelta(hours=3):
                await kit_.booked_shipment(sessions, delivery_id, waybill="JOLATE00001")
                recorded = True
        assert recorded and row.error is None
        assert waits == sorted(waits) and waits[-1] >= 8 * waits[0]  # exponential
        assert row.attempts == len(waits) + 1 < applying.MAX_ATTEMPTS
        async with sessions() as session:
            shipment = await session.scalar(select(Shipment))
        assert shipment is not None and shipment.status == "picked_up"


async def test_push_for_a_waybill_never_recorded_is_escalated_not_dropped(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with make_kit(engine, sessions, tmp_path, jnt_push=True) as kit:
        jnt_office, _ = await seed_delivery(kit, courier="jnt")
        await seed_delivery(kit, courier="posind", i=2)
        received = kit.clock.now()
        status, _ = await _post(kit, *_signed(kit, [_pickup("JONEVER0001", received)]))
        assert status == 200
        [row] = await _inbox_rows(sessions)
        waits: list[timedelta] = []
        while row.processed_at is None:
            assert await inbox.once(kit.ctx, "w1") == 1
            row = await _row(sessions, row.id)
            if row.next_attempt_at is not None:
                waits.append(row.next_attempt_at - kit.clock.now())
                kit.clock.set(row.next_attempt_at)
        assert max(waits) <= timedelta(days=1)  # capped
        assert kit.clock.now() - received >= applying.UNKNOWN_GIVE_UP
        assert row.attempts < applying.MAX_ATTEMPTS and "unknown" in (row.error or "")
        [item] = await kit_.exceptions(kit, "push_unknown_waybill")
        assert item.office_id == jnt_office and "JONEVER0001" in item.detail
        assert item.resolved_at is None


async def test_a_signed_push_we_cannot_read_is_closed_and_reported(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    """A verified push whose body we cannot parse (a new payload format) is not retried for
    ever, does not hold the inbox-lag gauge up, and dispatch is told."""
    async with make_kit(engine, sessions, tmp_path, jnt_push=True) as kit:
        jnt_office, _ = await seed_delivery(kit, courier="jnt")
        now = kit.clock.now()
        async with transaction(sessions) as session:
            session.add(
                InboxItem(
                    courier_code="jnt",
                    dedupe_key="odd",
                    body="bizContent=%7B%22odd%22%3A1%7D",
                    received_at=now,
                )
            )
        assert await inbox.once(kit.ctx, "w1") == 1
        [row] = await _inbox_rows(sessions)
        assert row.processed_at == now and row.attempts == applying.MAX_ATTEMPTS
        assert row.error is not None and row.error.startswith("not a push we can read")
        [item] = await kit_.exceptions(kit, "inbox_unprocessable")
        assert item.office_id == jnt_office and f"inbox row {row.id}" in item.detail
        assert await inbox.once(kit.ctx, "w1") == 0  # closed: never taken again


async def test_a_batch_locks_every_shipment_it_touches_before_applying_any(
    backend: str, sessions: SessionFactory, engine: AsyncEngine
) -> None:
    """Two workers whose batches share parcels deadlocked when each locked them in the order
    its rows listed them (found by `make chaos`). A batch now locks all of its shipments, in id
    order, before applying any: another transaction can take none of them meanwhile."""
    office_id = await seed.office(sessions)
    first, second = await seed.deliveries(sessions, office_id, 2)
    a = await kit_.booked_shipment(sessions, first, waybill="JO0000000101")
    b = await kit_.booked_shipment(sessions, second, waybill="JO0000000102")
    at = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
    # one row lists B before A, as a push may
    events = [
        TrackingEvent(waybill, at, "10", "Pickup scan", Status.PICKED_UP)
        for waybill in ("JO0000000102", "JO0000000101")
    ]
    async with transaction(sessions) as session:
        row = InboxItem(
            courier_code="jnt", dedupe_key="lock-order", body="{}", received_at=at, attempts=0
        )
        await applying._lock_in_order(session, [row], [events])
        if backend == "postgresql":  # SQLite has one writer: there is nothing to race
            async with engine.connect() as other:
                for shipment_id in (a, b):
                    locked = await other.execute(
                        text("SELECT id FROM shipments WHERE id = :id FOR UPDATE SKIP LOCKED"),
                        {"id": shipment_id},
                    )
                    assert locked.first() is None, f"shipment {shipment_id} was not locked"
