"""Booking against the real J&T and Pos Indonesia simulators on loopback (invariant 1).

Every test counts orders at the simulator (``/_sim/orders``): exactly one per reference, whatever
went wrong in between. The simulators and the service share one ManualClock, so "later" is a
clock advance, never a wait.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import worker_seed as seed
from aiohttp.test_utils import TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import registry
from adapters.clock import ManualClock
from adapters.jnt import simulator as jnt_sim
from adapters.posind import simulator as pos_sim
from courier.config import Settings
from courier.context import AppContext
from courier.db.engine import SessionFactory
from courier.db.models import AuditEntry, Delivery, ExceptionItem
from worker import book, claim

# the simulators hold a "lost" answer this long (wall); the client gives up well before
HOLD_SECONDS = 3.0
FAST_TRANSPORT = {"connect_timeout": 1, "read_timeout": 0.3, "total_timeout": 0.5,
                  "max_attempts": 2, "backoff_initial": 0.01, "backoff_max": 0.05}


@dataclass
class Sim:
    server: TestServer
    http: aiohttp.ClientSession

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def orders(self) -> dict[str, Any]:
        async with self.http.get(self.url("/_sim/orders")) as r:
            data: dict[str, Any] = await r.json()
            return data

    async def fault(self, spec: Mapping[str, Any]) -> None:
        async with self.http.post(self.url("/_sim/faults"), json=spec) as r:
            assert r.status == 200, await r.text()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(seed.T0)


@pytest.fixture
async def sims(clock: ManualClock) -> AsyncIterator[dict[str, Sim]]:
    servers = {
        "jnt": TestServer(jnt_sim.create_app(clock), host="127.0.0.1"),
        "posind": TestServer(pos_sim.create_app(clock), host="127.0.0.1"),
    }
    async with aiohttp.ClientSession() as http:
        for s in servers.values():
            await s.start_server()
        try:
            yield {code: Sim(s, http) for code, s in servers.items()}
        finally:
            for s in servers.values():
                await s.close()


def courier_settings(sims: dict[str, Sim]) -> dict[str, dict[str, Any]]:
    jnt = jnt_sim.adapter_settings(str(sims["jnt"].server.make_url("/")))
    pos = pos_sim.adapter_settings(str(sims["posind"].server.make_url("/")))
    return {"jnt": {**jnt, "transport": FAST_TRANSPORT},
            "posind": {**pos, "transport": FAST_TRANSPORT}}


@pytest.fixture
async def ctx(
    db_url: str, engine: AsyncEngine, sessions: SessionFactory, clock: ManualClock,
    sims: dict[str, Sim],
) -> AsyncIterator[AppContext]:
    couriers = courier_settings(sims)
    settings = Settings(raw={}, database_url=db_url, lease_seconds=60, max_reconciliations=3,
                        concurrency_per_courier=2, couriers=couriers)
    adapters = {code: registry.create(code, s, clock=clock) for code, s in couriers.items()}
    yield AppContext(settings=settings, engine=engine, sessions=sessions, clock=clock,
                     couriers=adapters)
    for adapter in adapters.values():
        await adapter.close()


async def _exceptions(sessions: SessionFactory) -> list[ExceptionItem]:
    async with sessions() as session:
        return list(await session.scalars(select(ExceptionItem)))


async def _drain(ctx: AppContext, worker_id: str) -> list[int]:
    """Cycles until nothing is claimable; the claimed count of each."""
    counts = []
    while claimed := await book.once(ctx, worker_id):
        counts.append(claimed)
    return counts


async def test_books_each_delivery_exactly_once(ctx: AppContext, sims: dict[str, Sim]):
    office = await seed.office(ctx.sessions)
    ids = await seed.deliveries(ctx.sessions, office, 5)
    # bounded batches: 2 calls per courier × 2 couriers
    assert await _drain(ctx, "w1") == [4, 1]
    ships = await seed.shipments(ctx.sessions)
    assert [s.status for s in ships] == ["booked"] * 5
    assert all(s.waybill and s.waybill.startswith("JO") for s in ships)
    assert all(s.lease_owner is None and s.next_poll_at == seed.T0 for s in ships)
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
    await sims["jnt"].fault({"endpoints": {"create": {"timeout_seconds": HOLD_SECONDS}},
                             "force": [{"endpoint": "create", "kind": "timeout_processed"}]})
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


async def test_unknown_after_max_reconciliations_never_books_twice(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock
):
    office = await seed.office(ctx.sessions, courier="posind")
    [d] = await seed.deliveries(ctx.sessions, office, 1)
    # Pos has no lookup: once the answer is lost, every resend is "already used"
    await sims["posind"].fault({"endpoints": {"create": {"timeout_seconds": HOLD_SECONDS}},
                                "force": [{"endpoint": "create", "kind": "timeout_processed"}]})
    assert await book.once(ctx, "w1") == 1
    for expected in (1, 2, 3):
        [ship] = await seed.shipments(ctx.sessions)
        assert ship.status == "booking" and ship.next_poll_at is not None
        clock.set(ship.next_poll_at)
        assert await book.once(ctx, "w1") == 1
        [ship] = await seed.shipments(ctx.sessions)
        assert ship.reconcile_count == expected
    assert ship.next_poll_at is None  # parked for a human
    clock.advance(timedelta(days=1))
    assert await book.once(ctx, "w1") == 0
    assert await seed.delivery_states(ctx.sessions) == {d: "needs_attention"}
    [item] = await _exceptions(ctx.sessions)
    assert item.kind == "booking_unknown" and ship.client_reference in item.detail
    orders = await sims["posind"].orders()
    assert [o["reference"] for o in orders["orders"]] == [ship.client_reference]  # one order
    assert orders["create_counts"] == {ship.client_reference: 4}  # 1 call + 3 same-ref resends
    assert len(await seed.shipments(ctx.sessions)) == 1  # and no second attempt minted


async def test_courier_down_retries_later_with_the_same_reference(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock
):
    office = await seed.office(ctx.sessions)
    await seed.deliveries(ctx.sessions, office, 1)
    await sims["jnt"].fault({"endpoint": "create", "kind": "error", "count": 1})
    assert await book.once(ctx, "w1") == 1
    [ship] = await seed.shipments(ctx.sessions)
    assert (ship.status, ship.reconcile_count) == ("booking", 0)
    assert ship.status_reason is not None and "unavailable" in ship.status_reason
    assert ship.next_poll_at is not None
    clock.set(ship.next_poll_at)
    assert await book.once(ctx, "w1") == 1
    [after] = await seed.shipments(ctx.sessions)
    assert after.status == "booked" and after.client_reference == ship.client_reference
    assert (await sims["jnt"].orders())["create_counts"] == {ship.client_reference: 1}


async def test_worker_that_lost_its_lease_cannot_overwrite(ctx: AppContext):
    office = await seed.office(ctx.sessions)
    [d] = await seed.deliveries(ctx.sessions, office, 1)
    await claim.claim_deliveries(ctx.sessions, owner="old", now=seed.T0, lease_seconds=60,
                                 limit=1)
    later = seed.T0 + timedelta(seconds=61)
    assert await claim.claim_deliveries(ctx.sessions, owner="new", now=later, lease_seconds=60,
                                        limit=1) == [d]
    from courier.services import booking

    outcome = await booking.book_delivery(ctx, d, "old")
    assert outcome.result == "lost_lease"
    assert await seed.shipments(ctx.sessions) == []
