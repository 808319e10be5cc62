"""A `courier work` process killed at each step of booking, then restarted: exactly one order per
reference at the simulator, and every delivery ends booked (invariants 1 and 3). Plus SIGTERM:
in-flight calls finish, leases are released, exit 0; a second signal exits at once.

The worker and the J&T simulator are real subprocesses. "Before the call" and "after the call,
before the commit" use the worker's documented crash hook (COURIER_TEST_CRASH_AT, an
``os._exit(137)``, indistinguishable from SIGKILL for the database); "during the call" is a real
SIGKILL while the simulator holds the answer to an order it has already made.
"""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path

import pytest
import worker_procs as wp
import worker_seed as seed
from sqlalchemy import func, select

from courier.db.engine import SessionFactory
from courier.db.models import Delivery, Shipment

pytestmark = pytest.mark.slow

LATER = timedelta(hours=1)  # the restarted worker's clock: the dead worker's leases are over


async def _shipment_statuses(sessions: SessionFactory) -> list[tuple[str, str]]:
    return [(s.client_reference, s.status) for s in await seed.shipments(sessions)]


async def _leases_held(sessions: SessionFactory) -> int:
    async with sessions() as session:
        held = 0
        for model in (Delivery, Shipment):
            held += int(
                await session.scalar(
                    select(func.count()).select_from(model).where(model.lease_owner.is_not(None))
                )
                or 0
            )
        return held


def _one_order_each(sim: wp.Simulator, references: list[str]) -> None:
    orders = sim.orders()
    assert orders["create_counts"] == dict.fromkeys(references, 1)
    assert sorted(o["reference"] for o in orders["orders"]) == sorted(references)


@pytest.mark.parametrize("step", ["before_book", "during_book", "after_book"])
async def test_killed_at_each_step_books_exactly_once(
    step: str, db_url: str, sessions: SessionFactory, tmp_path: Path
):
    office = await seed.office(sessions)
    [delivery] = await seed.deliveries(sessions, office, 1)
    reference = "BLT20260000000101"
    faults = None
    if step == "during_book":  # the order is made, then the answer is held for 60 s
        faults = {
            "endpoints": {"create": {"timeout_seconds": 60}},
            "force": [{"endpoint": "create", "kind": "timeout_processed"}],
        }
    with wp.processes(tmp_path) as procs:
        sim = wp.Simulator(procs, faults)
        await sim.ready()
        config = wp.write_config(tmp_path, db_url, sim.url)
        first = wp.start_worker(
            procs, config, "w1", crash_at=None if step == "during_book" else step
        )
        try:
            if step == "during_book":

                async def order_made() -> bool:
                    return sim.orders()["create_counts"].get(reference) == 1

                await wp.wait_for(order_made, "the simulator to make the order")
                first.send_signal(signal.SIGKILL)
            assert await wp.wait_exit(first) in (137, -signal.SIGKILL)

            # the intent survived the crash, still leased by the dead worker
            assert await _shipment_statuses(sessions) == [(reference, "booking")]
            counts = sim.orders()["create_counts"]
            assert counts == ({} if step == "before_book" else {reference: 1})

            second = wp.start_worker(procs, config, "w2", clock_ahead=LATER)

            async def booked() -> bool:
                return await _shipment_statuses(sessions) == [(reference, "booked")]

            await wp.wait_for(booked, "the restarted worker to settle the booking")
            _one_order_each(sim, [reference])
            assert await seed.delivery_states(sessions) == {delivery: "shipping"}
            [ship] = await seed.shipments(sessions)
            assert ship.waybill == sim.orders()["orders"][0]["waybill"]
            wp.terminate(second)
            assert await wp.wait_exit(second) == 0
        except AssertionError as err:
            raise AssertionError(f"{err}\n{procs.logs()}") from err


async def test_sigterm_drains_in_flight_work_and_releases_leases(
    db_url: str, sessions: SessionFactory, tmp_path: Path
):
    office = await seed.office(sessions)
    await seed.deliveries(sessions, office, 6)
    # each create takes 1.5 s: the worker is mid-call when the signal comes
    faults = {"endpoints": {"create": {"latency_ms": [1500, 1500]}}}
    with wp.processes(tmp_path) as procs:
        sim = wp.Simulator(procs, faults)
        await sim.ready()
        config = wp.write_config(tmp_path, db_url, sim.url, concurrency_per_courier=2)
        worker = wp.start_worker(procs, config, "w1")
        try:

            async def in_flight() -> bool:
                return any(s == "booking" for _, s in await _shipment_statuses(sessions))

            await wp.wait_for(in_flight, "a booking in flight")
            wp.terminate(worker)
            assert await wp.wait_exit(worker) == 0
            statuses = await _shipment_statuses(sessions)
            # what was in flight finished; nothing was left half-done or leased
            assert statuses and all(s == "booked" for _, s in statuses)
            assert await _leases_held(sessions) == 0
            _one_order_each(sim, [r for r, _ in statuses])
            states = await seed.delivery_states(sessions)
            assert sorted(states.values()).count("shipping") == len(statuses)
            assert all(s in ("shipping", "queued") for s in states.values())
        except AssertionError as err:
            raise AssertionError(f"{err}\n{procs.logs()}") from err


async def test_second_signal_exits_at_once(db_url: str, sessions: SessionFactory, tmp_path: Path):
    office = await seed.office(sessions)
    await seed.deliveries(sessions, office, 1)
    faults = {"endpoints": {"create": {"latency_ms": [20000, 20000]}}}
    with wp.processes(tmp_path) as procs:
        sim = wp.Simulator(procs, faults)
        await sim.ready()
        config = wp.write_config(tmp_path, db_url, sim.url, grace_seconds=60)
        worker = wp.start_worker(procs, config, "w1")
        try:

            async def in_flight() -> bool:
                return await _shipment_statuses(sessions) == [("BLT20260000000101", "booking")]

            await wp.wait_for(in_flight, "a booking in flight")
            wp.terminate(worker)

            async def stopping() -> bool:  # signals are not queued: let the first land
                return "worker.stopping" in procs.logs()

            await wp.wait_for(stopping, "the first signal to be handled")
            wp.terminate(worker)
            # far sooner than the 20 s call or the 60 s grace
            assert await wp.wait_exit(worker, within=5) == 128 + signal.SIGTERM
            # the lease is left to expire; the next worker will reconcile by reference
            assert await _shipment_statuses(sessions) == [("BLT20260000000101", "booking")]
        except AssertionError as err:
            raise AssertionError(f"{err}\n{procs.logs()}") from err


async def test_sigterm_past_grace_leaves_a_cut_off_booking_leased(
    db_url: str, sessions: SessionFactory, tmp_path: Path
):
    office = await seed.office(sessions)
    await seed.deliveries(sessions, office, 3)
    reference = "BLT20260000000101"
    # one create at a time, each far longer than the grace: the first is cut off mid-call
    faults = {"endpoints": {"create": {"latency_ms": [20000, 20000]}}}
    with wp.processes(tmp_path) as procs:
        sim = wp.Simulator(procs, faults)
        await sim.ready()
        config = wp.write_config(
            tmp_path,
            db_url,
            sim.url,
            grace_seconds=0.5,
            concurrency_per_courier=1,
            lease_seconds=300,
        )
        worker = wp.start_worker(procs, config, "w1")
        try:

            async def in_flight() -> bool:
                return await _shipment_statuses(sessions) == [(reference, "booking")]

            await wp.wait_for(in_flight, "a booking in flight")
            wp.terminate(worker)
            assert await wp.wait_exit(worker, within=10) == 0
            # the cut-off call may have reached the courier: its lease is left to expire so
            # a reconciliation by reference settles it, never a fresh send right away
            [ship] = await seed.shipments(sessions)
            assert (ship.client_reference, ship.status, ship.lease_owner) == (
                reference,
                "booking",
                "w1",
            )
            async with sessions() as session:
                held = await session.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.lease_owner.is_not(None))
                )
            assert held == 0  # deliveries not yet sent were handed back at once
        except AssertionError as err:
            raise AssertionError(f"{err}\n{procs.logs()}") from err
