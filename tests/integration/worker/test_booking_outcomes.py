"""Every booking ends (issue 9): lookups that do not exist, answers we do not understand, code
that fails, and staff settling what only the courier's portal can tell.

Against the real J&T and Pos Indonesia simulators on loopback; the service and the simulators
share one ManualClock, so "later" is a clock advance. Courier calls are counted at the
simulator (``/_sim/orders`` ``calls``), orders per reference too.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import worker_seed as seed
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from test_booking import HOLD_SECONDS, Sim, courier_settings

from adapters import registry
from core.clock import ManualClock
from courier.config import Settings
from courier.context import AppContext
from courier.db.engine import SessionFactory, transaction
from courier.db.models import AuditEntry, Delivery, ExceptionItem, Shipment
from courier.services import dispatch, stuck_booking
from courier.services.errors import ServiceError
from courier.services.staff import Caller
from simulators import jnt as jnt_sim
from worker import book

LIMIT = 3  # worker.max_reconciliations in these tests


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(seed.T0)


@pytest.fixture
def jnt_options() -> dict[str, Any]:
    return {}


@pytest.fixture
async def sims(clock: ManualClock, jnt_options: dict[str, Any]) -> AsyncIterator[dict[str, Sim]]:
    from aiohttp import ClientSession
    from aiohttp.test_utils import TestServer

    from simulators import posind as pos_sim

    servers = {
        "jnt": TestServer(jnt_sim.create_app(clock, options=jnt_options), host="127.0.0.1"),
        "posind": TestServer(pos_sim.create_app(clock), host="127.0.0.1"),
    }
    async with ClientSession() as http:
        for s in servers.values():
            await s.start_server()
        try:
            yield {code: Sim(s, http) for code, s in servers.items()}
        finally:
            for s in servers.values():
                await s.close()


@pytest.fixture
def jnt_settings() -> dict[str, Any]:
    """Overrides of the J&T settings for one test."""
    return {}


@pytest.fixture
async def ctx(
    db_url: str,
    engine: AsyncEngine,
    sessions: SessionFactory,
    clock: ManualClock,
    sims: dict[str, Sim],
    jnt_settings: dict[str, Any],
) -> AsyncIterator[AppContext]:
    couriers = courier_settings(sims)
    couriers["jnt"] = {**couriers["jnt"], **jnt_settings}
    settings = Settings(
        raw={},
        database_url=db_url,
        lease_seconds=60,
        max_reconciliations=LIMIT,
        concurrency_per_courier=2,
        couriers=couriers,
    )
    adapters = {code: registry.create(code, s, clock=clock) for code, s in couriers.items()}
    yield AppContext(
        settings=settings, engine=engine, sessions=sessions, clock=clock, couriers=adapters
    )
    for adapter in adapters.values():
        await adapter.close()


async def _items(sessions: SessionFactory, *, open_only: bool = True) -> list[ExceptionItem]:
    async with sessions() as session:
        query = select(ExceptionItem).order_by(ExceptionItem.id)
        if open_only:
            query = query.where(ExceptionItem.resolved_at.is_(None))
        return list(await session.scalars(query))


async def _lost_reply(sim: Sim, count: int = 1) -> None:
    """The next ``count`` creates are processed, their answers held past the client's timeout."""
    await sim.fault(
        {
            "endpoints": {"create": {"timeout_seconds": HOLD_SECONDS}},
            "force": [{"endpoint": "create", "kind": "timeout_processed", "count": count}],
        }
    )


async def _until_settled(ctx: AppContext, clock: ManualClock, *, horizon: timedelta) -> int:
    """Run the booking loop, moving the clock to each next due shipment, until nothing is due
    within ``horizon``. Returns how many rows were claimed in all."""
    end = clock.now() + horizon
    claimed = 0
    while True:
        while n := await book.once(ctx, "w1"):
            claimed += n
        async with ctx.sessions() as session:
            due = await session.scalar(
                select(Shipment.next_poll_at)
                .where(Shipment.status == "booking", Shipment.next_poll_at.is_not(None))
                .order_by(Shipment.next_poll_at)
                .limit(1)
            )
        if due is None or due > end:
            return claimed
        clock.set(max(due, clock.now()))


# --------------------------------------------------------------------------------------------
# Capabilities, not guesses


NO_LOOKUP = {"variations": {"rates": {"no_lookup": 1}}}


@pytest.mark.parametrize("jnt_options", [NO_LOOKUP])
async def test_lookup_route_404_is_a_capability_and_the_duplicate_answer_means_it_exists(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock
) -> None:
    office = await seed.office(ctx.sessions)
    [d1, d2] = await seed.deliveries(ctx.sessions, office, 2)
    await _lost_reply(sims["jnt"], count=2)
    assert await book.once(ctx, "w1") == 2  # both created, both answers lost
    await _until_settled(ctx, clock, horizon=timedelta(hours=2))
    ships = await seed.shipments(ctx.sessions)
    assert [s.status for s in ships] == ["booking", "booking"]  # parked for a person
    assert await seed.delivery_states(ctx.sessions) == {
        d1: "needs_attention",
        d2: "needs_attention",
    }
    items = await _items(ctx.sessions)
    assert sorted(i.kind for i in items) == ["booking_exists", "booking_exists"]
    by_shipment = {i.shipment_id: i for i in items}
    for ship in ships:
        item = by_shipment[ship.id]
        assert ship.client_reference in item.detail and "portal" in item.detail
        assert ship.reconcile_count >= 1  # the reconciliation is counted
    orders = await sims["jnt"].orders()
    # one order per reference; the lookup's 404 was learned once, never asked again
    assert sorted(o["reference"] for o in orders["orders"]) == sorted(
        s.client_reference for s in ships
    )
    # learned once per process: the two reconciliations run side by side, so each may have asked
    # before the first 404 came back, never more than that
    assert 1 <= orders["calls"]["find"] <= 2
    assert orders["calls"]["create"] == 4  # each: the lost create and one resend
    assert ctx.couriers["jnt"].capabilities.find is False


@pytest.mark.parametrize("jnt_options", [NO_LOOKUP])
async def test_a_create_refused_before_it_reached_the_courier_is_resent_without_a_lookup(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock
) -> None:
    office = await seed.office(ctx.sessions)
    await seed.deliveries(ctx.sessions, office, 1)
    await sims["jnt"].fault({"endpoint": "create", "kind": "rate_limit", "count": 1})
    await _until_settled(ctx, clock, horizon=timedelta(hours=1))
    [ship] = await seed.shipments(ctx.sessions)
    assert ship.status == "booked" and ship.waybill
    orders = await sims["jnt"].orders()
    assert orders["calls"] == {"create": 2}  # the 429, then the resend: no lookup at all
    assert orders["create_counts"] == {ship.client_reference: 1}
    assert await _items(ctx.sessions) == []


@pytest.mark.parametrize("jnt_settings", [{"lookup": False}])
async def test_lookup_is_its_own_setting_not_implied_by_push_credentials(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock
) -> None:
    caps = ctx.couriers["jnt"].capabilities
    assert caps.push is True and caps.find is False  # push configured, lookup not
    office = await seed.office(ctx.sessions)
    [d] = await seed.deliveries(ctx.sessions, office, 1)
    await _lost_reply(sims["jnt"])
    await _until_settled(ctx, clock, horizon=timedelta(hours=2))
    [item] = await _items(ctx.sessions)
    assert item.kind == "booking_exists" and item.delivery_id == d
    orders = await sims["jnt"].orders()
    assert "find" not in orders["calls"] and orders["calls"]["create"] == 2
    assert len(orders["orders"]) == 1


# --------------------------------------------------------------------------------------------
# Answers we do not understand


@pytest.mark.parametrize("courier", ["jnt", "posind"])
async def test_an_answer_not_understood_asks_a_person_with_the_raw_answer_redacted(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock, courier: str
) -> None:
    office = await seed.office(ctx.sessions, courier=courier)
    [d] = await seed.deliveries(ctx.sessions, office, 1)
    await sims[courier].fault({"endpoint": "create", "kind": "unknown_shape", "count": 1})
    await _until_settled(ctx, clock, horizon=timedelta(hours=2))
    [ship] = await seed.shipments(ctx.sessions)
    assert ship.status == "booking"
    [item] = await _items(ctx.sessions)
    assert (item.kind, item.delivery_id, item.shipment_id) == ("answer_not_understood", d, ship.id)
    assert f"check reference {ship.client_reference} in the portal" in item.detail
    assert '"ticket": "Q-7731"' not in item.detail  # a value under an unknown key: masked
    assert '"result": "OK"' in item.detail  # codes and results are kept
    async with ctx.sessions() as session:
        entry = await session.scalar(
            select(AuditEntry).where(
                AuditEntry.entity_id == ship.id, AuditEntry.action == "shipment.outcome_unknown"
            )
        )
    assert entry is not None and entry.after is not None
    assert entry.after["courier_answer"] == {
        "result": "OK",
        "data": {"accepted": True, "ticket": "[redacted]"},
    }
    orders = await sims[courier].orders()
    assert orders["create_counts"] == {ship.client_reference: 1}  # never sent again


# --------------------------------------------------------------------------------------------
# Every booking ends


async def _set_street(sessions: SessionFactory, delivery_id: int, street: str) -> None:
    async with transaction(sessions) as session:
        delivery = await session.get_one(Delivery, delivery_id)
        delivery.address = {**(delivery.address or {}), "street": street}


@pytest.mark.parametrize("courier", ["jnt", "posind"])
async def test_a_lone_surrogate_backs_off_and_opens_an_item_never_a_hot_loop(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock, courier: str
) -> None:
    office = await seed.office(ctx.sessions, courier=courier)
    [d] = await seed.deliveries(ctx.sessions, office, 1)
    await _set_street(ctx.sessions, d, "Jl. Mawar \ud800 No. 5")  # signing/encoding fails
    claimed = 0
    for _ in range(24 * 2):  # a day of service-clock time in half-hour steps
        while n := await book.once(ctx, "w1"):
            claimed += n
        clock.advance(timedelta(minutes=30))
    assert claimed <= LIMIT + 1  # a few tries, then a person: not 417 claims
    [ship] = await seed.shipments(ctx.sessions)
    assert ship.status == "booking" and ship.next_poll_at is None
    assert await seed.delivery_states(ctx.sessions) == {d: "needs_attention"}
    [item] = await _items(ctx.sessions)
    assert item.kind == "booking_fault" and "UnicodeEncodeError" in item.detail
    assert "\ud800" not in item.detail and "Mawar" not in item.detail
    orders = await sims[courier].orders()
    assert orders["orders"] == [] and "create" not in orders["create_counts"]
    # staff can act on it: re-ship no longer answers 409 (a new attempt is queued)
    assert await dispatch.reship(ctx, _caller(office), d) == "queued"
    [closed] = await seed.shipments(ctx.sessions)
    assert closed.status == "booking_failed"
    assert await _items(ctx.sessions) == []


async def test_every_booking_ends_within_the_deadline_even_when_the_courier_never_answers(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock
) -> None:
    office = await seed.office(ctx.sessions)
    [d] = await seed.deliveries(ctx.sessions, office, 1)
    await sims["jnt"].fault({"endpoints": {"create": {"rate_limit_rate": 1.0}}})
    start = clock.now()
    claimed = await _until_settled(ctx, clock, horizon=timedelta(days=2))
    [ship] = await seed.shipments(ctx.sessions)
    assert ship.status == "booking" and ship.next_poll_at is None
    assert clock.now() - start <= timedelta(seconds=ctx.settings.booking_deadline_seconds)
    assert claimed <= 10  # backed off: 30 s doubling, the last try at the deadline
    [item] = await _items(ctx.sessions)
    assert item.kind == "booking_unknown" and "booking deadline" in item.detail
    assert await seed.delivery_states(ctx.sessions) == {d: "needs_attention"}
    assert (await sims["jnt"].orders())["orders"] == []


# --------------------------------------------------------------------------------------------
# Staff settle what only the portal can tell


def _caller(office: int) -> Caller:
    return Caller(token_id=0, office_id=office, role="dispatcher", actor="staff:7")


async def _parked_pos_booking(ctx: AppContext, sims: dict[str, Sim]) -> tuple[int, int]:
    office = await seed.office(ctx.sessions, courier="posind")
    [d] = await seed.deliveries(ctx.sessions, office, 1)
    await _lost_reply(sims["posind"])
    assert await book.once(ctx, "w1") == 1
    [item] = await _items(ctx.sessions)
    assert item.kind == "booking_unknown"
    return office, d


async def test_staff_record_the_waybill_found_in_the_portal(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock
) -> None:
    office, d = await _parked_pos_booking(ctx, sims)
    waybill = (await sims["posind"].orders())["orders"][0]["waybill"]
    done = await stuck_booking.record_waybill(
        ctx, _caller(office), d, waybill=waybill, note="found in the Pos portal"
    )
    assert (done.status, done.waybill, done.delivery_state) == ("booked", waybill, "shipping")
    [ship] = await seed.shipments(ctx.sessions)
    assert (ship.status, ship.waybill, ship.next_poll_at) == ("booked", waybill, clock.now())
    assert await _items(ctx.sessions) == []
    [resolved] = await _items(ctx.sessions, open_only=False)
    assert resolved.resolved_by == "staff:7" and waybill in (resolved.resolution or "")
    async with ctx.sessions() as session:
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert "shipment.waybill_recorded" in actions
    # nothing left in doubt: a second recording, or a release, is a conflict
    for act in (
        stuck_booking.record_waybill(ctx, _caller(office), d, waybill=waybill, note=""),
        stuck_booking.release_booking(ctx, _caller(office), d, reason="not in the portal"),
    ):
        with pytest.raises(ServiceError) as info:
            await act
        assert info.value.code == "no_booking_in_doubt"
    # another office's delivery is not found
    with pytest.raises(ServiceError) as other:
        await stuck_booking.record_waybill(ctx, _caller(office + 1), d, waybill=waybill, note="")
    assert other.value.code == "unknown_delivery"


async def test_staff_release_a_booking_for_a_new_attempt_under_a_new_reference(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock
) -> None:
    office, d = await _parked_pos_booking(ctx, sims)
    done = await stuck_booking.release_booking(
        ctx, _caller(office), d, reason="reference not in the Pos portal"
    )
    assert done.delivery_state == "queued"
    assert await book.once(ctx, "w1") == 1  # the new attempt
    old, new = await seed.shipments(ctx.sessions)
    assert (old.status, new.status) == ("booking_failed", "booked")
    assert (old.attempt_no, new.attempt_no) == (1, 2)
    assert old.client_reference != new.client_reference
    assert await seed.delivery_states(ctx.sessions) == {d: "shipping"}
    counts = (await sims["posind"].orders())["create_counts"]
    assert counts == {old.client_reference: 1, new.client_reference: 1}  # the old never resent


async def test_release_refused_while_a_worker_is_on_it(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock
) -> None:
    office, d = await _parked_pos_booking(ctx, sims)
    async with transaction(ctx.sessions) as session:
        await session.execute(
            update(Shipment).values(
                lease_owner="w9", lease_until=clock.now() + timedelta(seconds=60)
            )
        )
    with pytest.raises(ServiceError) as info:
        await stuck_booking.release_booking(ctx, _caller(office), d, reason="not in the portal")
    assert info.value.code == "booking_in_progress"
    [ship] = await seed.shipments(ctx.sessions)
    assert ship.status == "booking"  # nothing changed


async def test_collected_at_the_counter_closes_a_booking_left_in_doubt(
    ctx: AppContext, sims: dict[str, Sim]
) -> None:
    office, d = await _parked_pos_booking(ctx, sims)
    done = await dispatch.collected_at_counter(ctx, _caller(office), d)
    assert done.state == "collected_at_office"
    [ship] = await seed.shipments(ctx.sessions)
    assert ship.status == "booking_failed"
    assert await _items(ctx.sessions) == []


# --------------------------------------------------------------------------------------------
# The regression: a lookup that answers 404 and 25 % create faults, lost replies included


@pytest.mark.parametrize("jnt_options", [NO_LOOKUP])
async def test_no_lookup_with_create_faults_every_booking_ends_in_few_calls_and_no_duplicates(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock
) -> None:
    n = 40
    office = await seed.office(ctx.sessions)
    await seed.deliveries(ctx.sessions, office, n)
    await sims["jnt"].fault(
        {
            "seed": 9,
            "endpoints": {
                "create": {
                    "timeout_seconds": HOLD_SECONDS,
                    "timeout_processed_rate": 0.10,  # lost replies: the order exists
                    "error_rate": 0.05,  # 503: may or may not exist
                    "rate_limit_rate": 0.05,  # 429: certainly not made
                    "timeout_rate": 0.05,  # 504 before processing
                }
            },
        }
    )
    await _until_settled(ctx, clock, horizon=timedelta(days=1))
    ships = await seed.shipments(ctx.sessions)
    items = {i.shipment_id: i for i in await _items(ctx.sessions)}
    states = await seed.delivery_states(ctx.sessions)
    orders = await sims["jnt"].orders()
    calls = sum(orders["calls"].values())
    per_reference: dict[str, int] = {}
    for o in orders["orders"]:
        per_reference[o["reference"]] = per_reference.get(o["reference"], 0) + 1
    print(
        json.dumps(
            {
                "deliveries": n,
                "courier_calls": orders["calls"],
                "calls_per_booking": round(calls / n, 2),
                "booked": sum(s.status == "booked" for s in ships),
                "to_person": len(items),
            }
        )
    )
    assert all(count == 1 for count in per_reference.values())  # 0 duplicate orders
    assert len(ships) == n  # one attempt each, no new reference minted
    for ship in ships:
        if ship.status == "booked":
            assert states[ship.delivery_id] == "shipping"
        else:  # still in booking: parked, with an item saying what to check
            assert ship.status == "booking" and ship.next_poll_at is None, ship.status_reason
            assert states[ship.delivery_id] == "needs_attention"
            assert ship.id in items and ship.client_reference in items[ship.id].detail
    assert calls / n <= 3


async def test_a_booking_that_fails_before_its_intent_backs_off_and_asks_a_person(
    ctx: AppContext, sims: dict[str, Sim], clock: ManualClock
) -> None:
    # a setting the order cannot be built from (the schema refuses it at start; here it is set
    # past validation): the intent's transaction fails every time, before anything is sent
    jnt = {**ctx.settings.couriers["jnt"], "weight_kg": "one envelope"}
    ctx.settings = dataclasses.replace(ctx.settings, couriers={**ctx.settings.couriers, "jnt": jnt})
    office = await seed.office(ctx.sessions)
    [d] = await seed.deliveries(ctx.sessions, office, 1)
    claimed = 0
    for _ in range(24 * 2):  # a day in half-hour steps
        while n := await book.once(ctx, "w1"):
            claimed += n
        clock.advance(timedelta(minutes=30))
    assert claimed == LIMIT  # a few tries, then a person
    assert await seed.delivery_states(ctx.sessions) == {d: "needs_attention"}
    assert await seed.shipments(ctx.sessions) == []
    [item] = await _items(ctx.sessions)
    assert item.kind == "booking_fault" and "before anything was sent" in item.detail
    assert "InvalidOperation" in item.detail
    assert (await sims["jnt"].orders())["calls"] == {}
