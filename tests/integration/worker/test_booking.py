"""Booking against the real J&T and Pos Indonesia simulators on loopback (invariant 1).

Every test counts orders at the simulator (``/_sim/orders``): exactly one per reference, whatever
went wrong in between. The simulators and the service share one ManualClock, so "later" is a
clock advance, never a wait.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
import worker_seed as seed
from booking_sims import HOLD_SECONDS, Sim, courier_settings
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import registry
from core.clock import ManualClock
from courier.config import Settings
from courier.context import AppContext
from courier.db import queue as claim
from courier.db.engine import SessionFactory, transaction
from courier.db.models import AuditEntry, Delivery, ExceptionItem, Office
from courier.domain.exception_kinds import NEXT_STEPS, ExceptionKind
from courier.services import staff, watch
from courier.services.errors import ServiceError
from worker import book


async def _exceptions(sessions: SessionFactory) -> list[ExceptionItem]:
    async with sessions() as session:
        return list(await session.scalars(select(ExceptionItem)))


async def _drain(ctx: AppContext, worker_id: str) -> list[int]:
    """Cycles until nothing is claimable; the claimed count of each."""
    counts = []
    while claimed := await book.once(ctx, worker_id):
        counts.append(claimed)
    return counts


# Row locks only matter where writers run at once: SQLite serialises every write transaction
# (BEGIN IMMEDIATE), so these run on PostgreSQL only (always in CI).
POSTGRESQL_ONLY = pytest.mark.parametrize(
    "backend",
    [
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(
                not os.environ.get("COURIER_TEST_PG_URL"), reason="needs PostgreSQL"
            ),
        )
    ],
)


async def test_books_each_delivery_exactly_once(ctx: AppContext, sims: dict[str, Sim]):
    office = await seed.office(ctx.sessions)
    ids = await seed.deliveries(ctx.sessions, office, 5)
    # bounded batches: 2 calls per courier × 2 couriers
    assert await _drain(ctx, "w1") == [4, 1]
    ships = await seed.shipments(ctx.sessions)
    assert [s.status for s in ships] == ["booked"] * 5
    assert all(s.waybill and s.waybill.startswith("JO") for s in ships)
    # due for tracking from its booking (the clock moved only by the courier's rate spacing)
    now = ctx.clock.now()
    assert all(s.lease_owner is None and seed.T0 <= s.next_poll_at <= now for s in ships)
    assert {s.client_reference for s in ships} == {f"BLT2026{i:08d}01" for i in range(1, 6)}
    assert set((await seed.delivery_states(ctx.sessions)).values()) == {"shipping"}
    # nothing left to claim: a second pass books nothing more
    assert await book.once(ctx, "w1") == 0
    orders = await sims["jnt"].orders()
    assert orders["create_counts"] == {s.client_reference: 1 for s in ships}
    async with ctx.sessions() as session:
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert actions.count("shipment.booking") == 5 and actions.count("shipment.booked") == 5
    assert actions.count("delivery.state") == len(ids)


async def test_timed_out_create_is_reconciled_to_the_same_reference(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock
):
    office = await seed.office(ctx.sessions)
    await seed.deliveries(ctx.sessions, office, 1)
    # the order is made, then the answer is held past the client's timeout
    await sims["jnt"].fault(
        {
            "endpoints": {"create": {"timeout_seconds": HOLD_SECONDS}},
            "force": [{"endpoint": "create", "kind": "timeout_processed"}],
        }
    )
    assert await book.once(ctx, "w1") == 1
    [ship] = await seed.shipments(ctx.sessions)
    assert (ship.status, ship.waybill, ship.lease_owner) == ("booking", None, None)
    assert ship.status_reason is not None and ship.status_reason.startswith("outcome unknown")
    assert ship.next_poll_at is not None and ship.next_poll_at > clock.now()
    assert await book.once(ctx, "w1") == 0  # not due yet
    clock.set(ship.next_poll_at)
    assert await book.once(ctx, "w2") == 1
    [after] = await seed.shipments(ctx.sessions)
    orders = await sims["jnt"].orders()
    assert after.status == "booked" and after.client_reference == ship.client_reference
    assert after.waybill == orders["orders"][0]["waybill"]
    assert orders["create_counts"] == {ship.client_reference: 1}  # found, never resent


async def test_rejected_order_needs_attention(ctx: AppContext, sims: dict[str, Sim]):
    office = await seed.office(ctx.sessions)
    # Kabupaten Mojokerto: no J&T city code under this contract, so J&T refuses the order
    [d] = await seed.deliveries(ctx.sessions, office, 1, regency_code="35.16")
    assert await book.once(ctx, "w1") == 1
    [ship] = await seed.shipments(ctx.sessions)
    assert ship.status == "booking_failed"
    assert ship.status_reason is not None and "35.16" in ship.status_reason
    async with ctx.sessions() as session:
        delivery = await session.get(Delivery, d)
        assert delivery is not None
        assert delivery.state == "needs_attention" and delivery.state_reason == ship.status_reason
    [item] = await _exceptions(ctx.sessions)
    assert (item.kind, item.delivery_id, item.shipment_id) == ("booking_rejected", d, ship.id)
    assert (await sims["jnt"].orders())["orders"] == []
    assert await book.once(ctx, "w1") == 0  # a human decides now


async def test_pos_unknown_outcome_is_never_resent_and_needs_attention_at_once(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock
):
    office = await seed.office(ctx.sessions, courier="posind")
    [d] = await seed.deliveries(ctx.sessions, office, 1)
    # Pos can neither be asked nor is known to refuse a reused orderid: once the answer is lost,
    # nothing may be sent again
    await sims["posind"].fault(
        {
            "endpoints": {"create": {"timeout_seconds": HOLD_SECONDS}},
            "force": [{"endpoint": "create", "kind": "timeout_processed"}],
        }
    )
    assert await book.once(ctx, "w1") == 1
    [ship] = await seed.shipments(ctx.sessions)
    assert (ship.status, ship.lease_owner, ship.next_poll_at) == ("booking", None, None)
    assert await seed.delivery_states(ctx.sessions) == {d: "needs_attention"}
    [item] = await _exceptions(ctx.sessions)
    assert (item.kind, item.delivery_id, item.shipment_id) == ("booking_unknown", d, ship.id)
    assert ship.client_reference in item.detail and "Pos" in item.detail
    assert item.next_step == NEXT_STEPS[ExceptionKind.BOOKING_UNKNOWN].id
    clock.advance(timedelta(days=1))
    assert await book.once(ctx, "w1") == 0  # parked for a human, never claimed again
    orders = await sims["posind"].orders()
    assert [o["reference"] for o in orders["orders"]] == [ship.client_reference]
    assert orders["create_counts"] == {ship.client_reference: 1}  # exactly one create call
    assert len(await seed.shipments(ctx.sessions)) == 1  # and no second attempt minted


async def test_pos_shipment_left_in_booking_by_a_crash_is_not_resent(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock
):
    office = await seed.office(ctx.sessions, courier="posind")
    [d] = await seed.deliveries(ctx.sessions, office, 1)
    # a worker committed the intent, then died before (or while) calling Pos
    await claim.claim_deliveries(
        ctx.sessions, owner="dead", now=clock.now(), lease_seconds=60, limit=1
    )
    from courier.services import booking

    intent = await booking._commit_intent(ctx, d, "dead")
    assert not isinstance(intent, booking.Outcome)
    clock.advance(timedelta(seconds=61))
    assert await book.once(ctx, "w2") == 1  # reconciliation
    [ship] = await seed.shipments(ctx.sessions)
    assert ship.status == "booking" and ship.next_poll_at is None
    assert await seed.delivery_states(ctx.sessions) == {d: "needs_attention"}
    [item] = await _exceptions(ctx.sessions)
    assert item.kind == "booking_unknown" and intent.reference in item.detail
    assert (await sims["posind"].orders())["create_counts"] == {}  # nothing sent blindly


async def test_pos_create_that_never_left_is_retried_with_the_same_reference(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock
):
    office = await seed.office(ctx.sessions, courier="posind")
    [d] = await seed.deliveries(ctx.sessions, office, 1)
    adapter: Any = ctx.couriers["posind"]
    real_url = adapter._posting_url
    adapter._posting_url = _refused_url()  # connection refused: certainly nothing was sent
    assert await book.once(ctx, "w1") == 1
    [ship] = await seed.shipments(ctx.sessions)
    assert ship.status == "booking" and ship.reconcile_count == 0
    assert ship.create_may_exist is False and ship.status_reason
    assert await seed.delivery_states(ctx.sessions) == {d: "shipping"}
    adapter._posting_url = real_url
    assert ship.next_poll_at is not None
    clock.set(ship.next_poll_at)
    assert await book.once(ctx, "w1") == 1
    [after] = await seed.shipments(ctx.sessions)
    assert after.status == "booked" and after.client_reference == ship.client_reference
    assert (await sims["posind"].orders())["create_counts"] == {ship.client_reference: 1}
    assert await _exceptions(ctx.sessions) == []


def _refused_url() -> str:
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/create"


async def test_5xx_on_create_is_reconciled_not_blindly_resent(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock
):
    office = await seed.office(ctx.sessions)
    await seed.deliveries(ctx.sessions, office, 1)
    await sims["jnt"].fault({"endpoint": "create", "kind": "error", "count": 1})
    assert await book.once(ctx, "w1") == 1
    [ship] = await seed.shipments(ctx.sessions)
    assert (ship.status, ship.reconcile_count) == ("booking", 0)
    assert ship.status_reason is not None and ship.status_reason.startswith("outcome unknown")
    assert ship.next_poll_at is not None
    clock.set(ship.next_poll_at)
    assert await book.once(ctx, "w1") == 1  # find says none, J&T dedupes: resent, same ref
    [after] = await seed.shipments(ctx.sessions)
    assert after.status == "booked" and after.client_reference == ship.client_reference
    assert (await sims["jnt"].orders())["create_counts"] == {ship.client_reference: 1}


async def test_courier_down_retries_later_with_the_same_reference(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock
):
    office = await seed.office(ctx.sessions)
    await seed.deliveries(ctx.sessions, office, 1)
    adapter: Any = ctx.couriers["jnt"]
    real_url = adapter.urls["create"]
    adapter.urls["create"] = _refused_url()
    assert await book.once(ctx, "w1") == 1
    [ship] = await seed.shipments(ctx.sessions)
    assert (ship.status, ship.reconcile_count) == ("booking", 0)
    assert ship.status_reason is not None and "unavailable" in ship.status_reason
    assert ship.next_poll_at is not None
    async with ctx.sessions() as session:
        audits = list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "shipment.retry_later")
            )
        )
    assert [a.office_id for a in audits] == [office]  # staff of the office see it
    adapter.urls["create"] = real_url
    clock.set(ship.next_poll_at)
    assert await book.once(ctx, "w1") == 1
    [after] = await seed.shipments(ctx.sessions)
    assert after.status == "booked" and after.client_reference == ship.client_reference
    assert (await sims["jnt"].orders())["create_counts"] == {ship.client_reference: 1}


async def test_worker_that_lost_its_lease_cannot_overwrite(ctx: AppContext):
    office = await seed.office(ctx.sessions)
    [d] = await seed.deliveries(ctx.sessions, office, 1)
    await claim.claim_deliveries(ctx.sessions, owner="old", now=seed.T0, lease_seconds=60, limit=1)
    later = seed.T0 + timedelta(seconds=61)
    assert await claim.claim_deliveries(
        ctx.sessions, owner="new", now=later, lease_seconds=60, limit=1
    ) == [d]
    from courier.services import booking

    outcome = await booking.book_delivery(ctx, d, "old")
    assert outcome.result == "lost_lease"
    assert await seed.shipments(ctx.sessions) == []


async def _eventually(check: Callable[[], Awaitable[bool]], within: float = 10) -> None:
    """Poll ``check`` until it holds, or fail after ``within`` wall seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


async def _until_blocked_on_a_lock(sessions: SessionFactory) -> None:
    """Until some other PostgreSQL backend waits on a lock."""

    async def waiting() -> bool:
        async with sessions() as session:
            return bool(
                await session.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND pid <> pg_backend_pid()"
                    )
                )
            )

    await _eventually(waiting)


@POSTGRESQL_ONLY
async def test_address_change_racing_the_intent_is_ordered_by_the_row_lock(ctx: AppContext):
    from courier.services import booking

    office = await seed.office(ctx.sessions)
    [d] = await seed.deliveries(ctx.sessions, office, 1)
    await claim.claim_deliveries(ctx.sessions, owner="w1", now=seed.T0, lease_seconds=60, limit=1)
    moved = {**seed.address(), "street": "Jl. Baru No. 2"}
    # the applicant's address change holds the delivery row (as opt-in does) ...
    async with transaction(ctx.sessions) as session:
        row = await session.scalar(select(Delivery).where(Delivery.id == d).with_for_update())
        assert row is not None
        row.address = moved
        await session.flush()
        # ... while booking commits its intent: it must wait, then build from the new address
        intent_task = asyncio.create_task(booking._commit_intent(ctx, d, "w1"))
        await _until_blocked_on_a_lock(ctx.sessions)
    intent = await intent_task
    assert not isinstance(intent, booking.Outcome)
    assert intent.order.receiver.address.street == "Jl. Baru No. 2"


@POSTGRESQL_ONLY
async def test_concurrent_exception_items_do_not_fail_the_booking(ctx: AppContext):
    from courier.services import booking

    office = await seed.office(ctx.sessions, courier="dhl")  # no such adapter: unroutable
    [d] = await seed.deliveries(ctx.sessions, office, 1)
    await claim.claim_deliveries(ctx.sessions, owner="w1", now=seed.T0, lease_seconds=60, limit=1)
    # another process is opening the very same item and has not committed yet
    async with transaction(ctx.sessions) as session:
        session.add(
            ExceptionItem(
                office_id=office,
                delivery_id=d,
                kind="routing",
                detail="seen elsewhere",
                next_step="",
                dedupe_key=f"routing:{d}:1",
                opened_at=seed.T0,
            )
        )
        await session.flush()
        task = asyncio.create_task(booking.book_delivery(ctx, d, "w1"))
        await _until_blocked_on_a_lock(ctx.sessions)
    assert (await task).result == "needs_attention"  # not an IntegrityError
    assert await seed.delivery_states(ctx.sessions) == {d: "needs_attention"}
    [item] = await _exceptions(ctx.sessions)
    assert item.detail == "seen elsewhere"
    async with ctx.sessions() as session:
        moves = list(
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "delivery.state"))
        )
    assert [(m.entity_id, m.office_id, (m.after or {}).get("state")) for m in moves] == [
        (d, office, "needs_attention")
    ]


class _Gated:
    """The real J&T adapter, with ``book`` held at a gate the test opens: "a slow call" without
    relying on how fast this machine runs."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def book(self, order: Any) -> Any:
        self.entered.set()
        await self.gate.wait()
        return await self.inner.book(order)


async def test_leases_are_renewed_on_the_service_clock_during_a_slow_call(
    db_url: str, engine: AsyncEngine, sessions: SessionFactory, sims: dict[str, Sim]
):
    # the clock moves only when the test moves it; a renewal must follow the clock itself, or
    # the lease runs out mid-call and another worker takes the job over
    still = ManualClock(seed.T0, auto_advance=False)
    couriers = courier_settings(sims)
    settings = Settings(
        raw={},
        database_url=db_url,
        lease_seconds=60,
        max_reconciliations=3,
        concurrency_per_courier=2,
        couriers=couriers,
    )
    adapter = _Gated(registry.create("jnt", couriers["jnt"], clock=still))
    ctx = AppContext(
        settings=settings, engine=engine, sessions=sessions, clock=still, couriers={"jnt": adapter}
    )
    office = await seed.office(sessions)
    await seed.deliveries(sessions, office, 1)
    try:
        job = asyncio.create_task(book.once(ctx, "w1"))
        await asyncio.wait_for(adapter.entered.wait(), 30)
        [ship] = await seed.shipments(sessions)
        first_until = ship.lease_until
        assert first_until is not None and ship.status == "booking"
        # 25 s steps (under a lease, over the renewal interval of 20 s), 100 s in all: the first
        # lease is long over, and each step's renewal must have happened before the next
        until = first_until
        for _ in range(4):
            still.advance(timedelta(seconds=25))
            seen = until

            async def renewed(seen: Any = seen) -> bool:
                [row] = await seed.shipments(sessions)
                return bool(row.lease_until is not None and row.lease_until > seen)

            await _eventually(renewed, within=30)
            [row] = await seed.shipments(sessions)
            until = row.lease_until
            assert until == still.now() + timedelta(seconds=60)
        assert still.now() > first_until + timedelta(seconds=30)
        assert not job.done()  # the call is still held at the gate
        stolen = await claim.claim_stuck_bookings(
            sessions,
            owner="thief",
            now=still.now(),
            lease_seconds=60,
            limit=5,
            max_reconciliations=3,
        )
        assert stolen == []  # renewed in time: nobody can take the job over
        adapter.gate.set()
        assert await job == 1
    finally:
        adapter.gate.set()
        await adapter.close()
    [after] = await seed.shipments(sessions)
    assert after.status == "booked"
    assert (await sims["jnt"].orders())["create_counts"] == {after.client_reference: 1}


async def test_booking_refused_for_the_sender_block_is_reshipped_once_the_office_is_fixed(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock
):
    """issue 10: an office without a sender contact sends its 39-character name as J&T's
    shipper_name (at most 30): refused. Once the office is fixed, re-shipping books it again
    (a new attempt, a new reference) instead of answering 409."""
    office_id = await seed.office(ctx.sessions)
    long_name = "Kantor Imigrasi Kelas II Non TPI Blitar"
    async with transaction(ctx.sessions) as session:
        office = await session.get(Office, office_id)
        assert office is not None
        office.name = long_name
        office.sender = {k: v for k, v in seed.SENDER.items() if k != "contact"}
    [d] = await seed.deliveries(ctx.sessions, office_id, 1)
    assert await book.once(ctx, "w1") == 1
    [refused] = await seed.shipments(ctx.sessions)
    assert refused.status == "booking_failed"
    assert "shipper_name: 39 characters, at most 30" in (refused.status_reason or "")

    spec = {
        "code": "BLT",
        "name": long_name,
        "home_regency_codes": ["35.05", "35.72"],
        "courier": "jnt",
        "sender": {k: v for k, v in seed.SENDER.items() if k != "contact"},
    }
    async with transaction(ctx.sessions) as session:  # still too long: refused, nothing changed
        with pytest.raises(ServiceError) as bad:
            await staff.upsert_office(session, spec, now=clock.now(), actor="test")
    assert [(e.path, e.message) for e in bad.value.details] == [
        (
            "$.name",
            "J&T Express shipper_name: 39 characters, at most 30 (the office name is sent "
            "when sender.contact is empty: set a shorter one)",
        )
    ]
    spec["sender"] = dict(seed.SENDER)
    async with transaction(ctx.sessions) as session:
        assert (await staff.upsert_office(session, spec, now=clock.now(), actor="test"))[1] == (
            "updated"
        )
        assert await watch.reship(session, d, "staff:1", now=clock.now(), office_id=office_id) == (
            "queued"
        )
    assert await book.once(ctx, "w1") == 1
    ships = await seed.shipments(ctx.sessions)
    assert [s.status for s in ships] == ["booking_failed", "booked"]
    assert ships[1].client_reference != refused.client_reference
    assert (await sims["jnt"].orders())["create_counts"] == {ships[1].client_reference: 1}
    assert [i.resolved_at is not None for i in await _exceptions(ctx.sessions)] == [True]
