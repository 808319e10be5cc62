"""The watchers on both backends: D-10 and D-3 warnings once each, expiry at the deadline,
stuck shipments, unconfirmed handovers, and the return path (re-ship or counter)."""

from __future__ import annotations

from datetime import timedelta

import tracking_kit as kit_
import worker_seed as seed
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from tracking_kit import booked_shipment, event

from adapters.base import Status
from adapters.clock import ManualClock
from courier.config import Settings
from courier.context import AppContext
from courier.db.engine import SessionFactory, transaction
from courier.db.models import Application, CustodyEvent, Delivery, ExceptionItem, OutboxItem
from courier.services import handover, tracking, watch
from courier.services.intake import hash_passport_no
from worker import watch as watch_loop


async def _items(sessions: SessionFactory, kind: str) -> list[ExceptionItem]:
    async with sessions() as session:
        return list(await session.scalars(
            select(ExceptionItem).where(ExceptionItem.kind == kind).order_by(ExceptionItem.id)))


async def _outbox(sessions: SessionFactory, kind: str) -> list[OutboxItem]:
    async with sessions() as session:
        return list(await session.scalars(select(OutboxItem).where(OutboxItem.kind == kind)))


async def _state(sessions: SessionFactory, delivery_id: int) -> Delivery:
    async with sessions() as session:
        delivery = await session.get(Delivery, delivery_id)
        assert delivery is not None
        return delivery


async def _feed(sessions: SessionFactory, shipment_id: int, *events: kit_.TrackingEvent) -> None:
    async with transaction(sessions) as session:
        shipment = await tracking.lock_shipment(session, shipment_id)
        assert shipment is not None
        await tracking.apply_events(session, shipment, list(events), source="poll",
                                    now=max(e.occurred_at for e in events))


async def test_deadline_warnings_once_each_then_expiry(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    office_id = await seed.office(sessions)
    [delivery_id] = await seed.deliveries(sessions, office_id, 1, collect_in_days=30)
    collect_by = (await _state(sessions, delivery_id)).collect_by
    assert collect_by is not None
    clock = ManualClock(seed.T0)
    ctx = AppContext(Settings(raw={}), engine, sessions, clock, {})

    assert await watch_loop.once(ctx, "w1") == 0
    clock.set(collect_by - timedelta(days=10))
    assert await watch_loop.once(ctx, "w1") == 1
    assert await watch_loop.once(ctx, "w1") == 0  # once only
    clock.set(collect_by - timedelta(days=3))
    assert await watch_loop.once(ctx, "w1") == 1
    warnings = await _items(sessions, "deadline_warning")
    assert [w.detail.split(":")[0] for w in warnings] == ["D-10", "D-3"]
    assert len(await _outbox(sessions, "staff_deadline_warning")) == 2

    clock.set(collect_by + timedelta(minutes=1))
    assert await watch_loop.once(ctx, "w1") == 1
    delivery = await _state(sessions, delivery_id)
    assert delivery.state == "expired" and "deadline" in (delivery.state_reason or "")
    assert len(await _items(sessions, "expired")) == 1
    assert await watch_loop.once(ctx, "w1") == 0


async def test_late_first_scan_opens_both_warnings(sessions: SessionFactory) -> None:
    office_id = await seed.office(sessions)
    [_] = await seed.deliveries(sessions, office_id, 1, collect_in_days=2)
    assert await watch.scan_deadlines(sessions, now=seed.T0) == 2
    assert await watch.scan_deadlines(sessions, now=seed.T0 + timedelta(hours=1)) == 0


async def test_stuck_shipment_is_reported_once_and_closed_when_it_moves(
    sessions: SessionFactory,
) -> None:
    office_id = await seed.office(sessions)  # pickup slots 10:00 and 15:00 WIB
    [delivery_id] = await seed.deliveries(sessions, office_id, 1)
    shipment_id = await booked_shipment(sessions, delivery_id)  # booked Monday 08:00 WIB
    assert await watch.scan_stuck(sessions, now=seed.T0 + timedelta(hours=4)) == 0
    late = seed.T0 + timedelta(hours=5, minutes=1)  # 10:00 slot + 3 h margin has passed
    assert await watch.scan_stuck(sessions, now=late) == 1
    assert await watch.scan_stuck(sessions, now=late + timedelta(hours=1)) == 0
    [item] = await _items(sessions, "stuck")
    assert item.shipment_id == shipment_id and item.resolved_at is None

    await _feed(sessions, shipment_id, event(Status.PICKED_UP, late + timedelta(hours=1)))
    [item] = await _items(sessions, "stuck")
    assert item.resolved_at is not None


async def test_unconfirmed_handover_after_three_days(sessions: SessionFactory) -> None:
    office_id = await seed.office(sessions)
    [delivery_id] = await seed.deliveries(sessions, office_id, 1)
    shipment_id = await booked_shipment(sessions, delivery_id)
    delivered_at = seed.T0 + timedelta(days=1)
    await _feed(sessions, shipment_id, event(
        Status.DELIVERED, delivered_at, receiver_name="Pemohon 1", relation="YBS"))
    assert (await _state(sessions, delivery_id)).state == "delivered"
    before = delivered_at + timedelta(days=3) - timedelta(minutes=1)
    assert await watch.scan_unconfirmed(sessions, now=before) == 0
    assert await watch.scan_unconfirmed(sessions, now=before + timedelta(minutes=2)) == 1
    assert await watch.scan_unconfirmed(sessions, now=before + timedelta(days=1)) == 0
    assert len(await _items(sessions, "unconfirmed")) == 1
    assert len(await _outbox(sessions, "applicant_confirm_reminder")) == 1
    # it rests visibly in needs-attention, and the applicant can still confirm from there
    assert (await _state(sessions, delivery_id)).state == "needs_attention"
    async with transaction(sessions) as session:
        delivery = await session.get_one(Delivery, delivery_id)
        token_hash = delivery.tracking_token_hash
        application = await session.get_one(Application, delivery.application_id)
        application.passport_no_hash = hash_passport_no(kit_.PEPPER, kit_.PASSPORT_NO)
    async with transaction(sessions) as session:
        confirmation = await handover.confirm_possession(
            session, token_hash, kit_.PASSPORT_NO, before + timedelta(days=2),
            pepper=kit_.PEPPER,
        )  # fmt: skip
    assert confirmation.outcome is handover.Confirmed.VERIFIED
    assert (await _state(sessions, delivery_id)).state == "handed_over"


async def test_return_too_close_to_the_deadline_goes_to_the_counter(
    sessions: SessionFactory,
) -> None:
    office_id = await seed.office(sessions)
    [delivery_id] = await seed.deliveries(sessions, office_id, 1, collect_in_days=7)
    shipment_id = await booked_shipment(sessions, delivery_id)
    t = seed.T0
    await _feed(sessions, shipment_id,
                event(Status.PICKED_UP, t + timedelta(hours=3)),
                event(Status.RETURNING, t + timedelta(days=2)),
                event(Status.RETURNED, t + timedelta(days=3)))  # fmt: skip
    assert (await _state(sessions, delivery_id)).state == "returned"
    [item] = await _items(sessions, "returned")
    assert "collect it at the counter" in item.next_step
    async with transaction(sessions) as session:
        outcome = await watch.reship(session, delivery_id, "staff:1", now=t + timedelta(days=3))
    assert outcome == "collect_at_counter"
    delivery = await _state(sessions, delivery_id)
    assert delivery.state == "returned" and "counter" in (delivery.state_reason or "")
    assert len(await _outbox(sessions, "applicant_collect_at_counter")) == 1
    async with transaction(sessions) as session:
        await watch.collected_at_counter(session, delivery_id, "staff:1",
                                         now=t + timedelta(days=4))
    assert (await _state(sessions, delivery_id)).state == "collected_at_office"
    async with sessions() as session:
        holders = list(await session.scalars(select(CustodyEvent.holder).where(
            CustodyEvent.delivery_id == delivery_id).order_by(CustodyEvent.id)))
    assert holders == ["courier", "office", "applicant"]
