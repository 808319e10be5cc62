"""The watchers on both backends: D-10 and D-3 warnings once each, expiry at the deadline,
stuck shipments, unconfirmed handovers, and the return path (re-ship or counter)."""

from __future__ import annotations

import asyncio
import inspect
from datetime import datetime, time, timedelta

import pytest
import tracking_kit as kit_
import worker_seed as seed
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from tracking_kit import booked_shipment, event

from core.clock import WIB, ManualClock
from core.status import Status
from courier.config import Settings
from courier.context import AppContext
from courier.db.engine import SessionFactory, transaction
from courier.db.models import Application, CustodyEvent, Delivery, ExceptionItem, OutboxItem
from courier.services import handover, tracking, watch
from courier.services.errors import Kind, ServiceError
from courier.services.intake import hash_passport_no
from worker import watch as watch_loop
from worker.loop import run_periodic


async def _items(sessions: SessionFactory, kind: str) -> list[ExceptionItem]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(ExceptionItem).where(ExceptionItem.kind == kind).order_by(ExceptionItem.id)
            )
        )


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
        await tracking.apply_events(
            session, shipment, list(events), source="poll", now=max(e.occurred_at for e in events)
        )


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
    await _feed(
        sessions,
        shipment_id,
        event(Status.DELIVERED, delivered_at, receiver_name="Pemohon 1", relation="YBS"),
    )
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
    confirmation = await handover.confirm_possession(
        sessions, token_hash, kit_.PASSPORT_NO, before + timedelta(days=2), pepper=kit_.PEPPER
    )
    assert confirmation.outcome is handover.Confirmed.VERIFIED
    assert (await _state(sessions, delivery_id)).state == "handed_over"


async def test_return_too_close_to_the_deadline_goes_to_the_counter(
    sessions: SessionFactory,
) -> None:
    office_id = await seed.office(sessions)
    [delivery_id] = await seed.deliveries(sessions, office_id, 1, collect_in_days=7)
    shipment_id = await booked_shipment(sessions, delivery_id)
    t = seed.T0
    await _feed(
        sessions,
        shipment_id,
        event(Status.PICKED_UP, t + timedelta(hours=3)),
        event(Status.RETURNING, t + timedelta(days=2)),
        event(Status.RETURNED, t + timedelta(days=3)),
    )
    assert (await _state(sessions, delivery_id)).state == "returned"
    [item] = await _items(sessions, "returned")
    assert "too little time is left to re-ship" in item.detail
    async with transaction(sessions) as session:
        outcome = await watch.reship(
            session, delivery_id, "staff:1", now=t + timedelta(days=3), office_id=office_id
        )
    assert outcome == "collect_at_counter"
    delivery = await _state(sessions, delivery_id)
    assert delivery.state == "returned" and "counter" in (delivery.state_reason or "")
    assert len(await _outbox(sessions, "applicant_collect_at_counter")) == 1
    async with transaction(sessions) as session:
        await watch.collected_at_counter(
            session, delivery_id, "staff:1", now=t + timedelta(days=4), office_id=office_id
        )
    assert (await _state(sessions, delivery_id)).state == "collected_at_office"
    async with sessions() as session:
        holders = list(
            await session.scalars(
                select(CustodyEvent.holder)
                .where(CustodyEvent.delivery_id == delivery_id)
                .order_by(CustodyEvent.id)
            )
        )
    assert holders == ["courier", "office", "applicant"]


async def test_staff_actions_require_the_callers_office(sessions: SessionFactory) -> None:
    """Invariant 5: re-ship and counter collection always check the caller's office; there is no
    way to call them without one, and another office's delivery is not found."""
    for action in (watch.reship, watch.collected_at_counter):
        param = inspect.signature(action).parameters["office_id"]
        assert param.default is inspect.Parameter.empty and param.annotation in (int, "int")
    office_id = await seed.office(sessions)
    other_office = await seed.office(sessions, code="MLG")
    [delivery_id] = await seed.deliveries(sessions, office_id, 1, collect_in_days=30)
    shipment_id = await booked_shipment(sessions, delivery_id)
    t = seed.T0
    await _feed(
        sessions,
        shipment_id,
        event(Status.PICKED_UP, t + timedelta(hours=3)),
        event(Status.RETURNING, t + timedelta(days=2)),
        event(Status.RETURNED, t + timedelta(days=3)),
    )
    later = t + timedelta(days=3, hours=1)
    with pytest.raises(TypeError):
        async with transaction(sessions) as session:
            await watch.reship(session, delivery_id, "staff:1", now=later)  # type: ignore[call-arg]
    for call in (watch.reship, watch.collected_at_counter):
        with pytest.raises(ServiceError) as caught:
            async with transaction(sessions) as session:
                await call(session, delivery_id, "staff:9", now=later, office_id=other_office)
        assert caught.value.kind is Kind.NOT_FOUND
    assert (await _state(sessions, delivery_id)).state == "returned"  # untouched
    async with transaction(sessions) as session:
        outcome = await watch.reship(
            session, delivery_id, "staff:1", now=later, office_id=office_id
        )
    assert outcome == "queued"


async def test_run_loop_waits_on_the_service_clock(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    """The watch loop's wait between scans is clock time (WATCH_SECONDS on ctx.clock): on a
    ManualClock it takes no wall time, and the deadline scan fires as the clock crosses D-10."""
    office_id = await seed.office(sessions)
    [delivery_id] = await seed.deliveries(sessions, office_id, 1, collect_in_days=11)
    collect_by = (await _state(sessions, delivery_id)).collect_by
    assert collect_by is not None
    # three minutes before the WIB midnight that starts day D-10
    d10 = datetime.combine(collect_by.astimezone(WIB).date() - timedelta(days=10), time(), WIB)
    start = d10 - timedelta(minutes=3)
    assert await watch.scan_deadlines(sessions, now=start) == 0
    clock = ManualClock(start)
    ctx = AppContext(Settings(raw={}, poll_seconds=7.0), engine, sessions, clock, {})
    stopping = asyncio.Event()
    task = asyncio.create_task(watch_loop.run(ctx, "w1", stopping))
    deadline = asyncio.get_running_loop().time() + 10
    while not await _items(sessions, "deadline_warning"):
        assert asyncio.get_running_loop().time() < deadline, "the loop never scanned again"
        await asyncio.sleep(0.01)
    stopping.set()
    await asyncio.wait_for(task, timeout=5)
    [item] = await _items(sessions, "deadline_warning")
    assert item.detail.startswith("D-10")
    # the clock moved in whole steps of WATCH_SECONDS (not of poll_seconds), the wall did not
    elapsed = (clock.now() - start).total_seconds()
    assert elapsed >= 180 and elapsed % watch_loop.WATCH_SECONDS == 0


async def test_run_periodic_waits_out_a_database_outage(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    """A cycle that hits a database outage is logged and retried (never fatal), and idle waits
    are clock waits: on a ManualClock the clock moves by the interval, the wall does not."""
    clock = ManualClock(seed.T0)
    ctx = AppContext(Settings(raw={}), engine, sessions, clock, {})
    stopping = asyncio.Event()
    calls: list[datetime] = []

    async def cycle(ctx: AppContext, worker_id: str) -> int:
        calls.append(clock.now())
        if len(calls) == 1:
            raise sa_exc.OperationalError("SELECT 1", {}, ConnectionRefusedError())
        if len(calls) == 4:
            stopping.set()
        return 0

    await asyncio.wait_for(
        run_periodic("test", cycle, ctx=ctx, worker_id="w1", stopping=stopping, interval=300),
        timeout=10,
    )
    assert len(calls) == 4
    assert calls[1] == calls[0]  # the outage was waited out on the wall, not on the clock
    assert [calls[2] - calls[1], calls[3] - calls[2]] == [timedelta(seconds=300)] * 2
