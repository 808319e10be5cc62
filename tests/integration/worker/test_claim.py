"""The claim statement on both backends: each row to one claimer per lease, expiry, order."""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import timedelta

import worker_seed as seed
from sqlalchemy import select, update

from courier import metrics
from courier.db import queue as claim
from courier.db.engine import SessionFactory, make_engine, make_sessions, transaction
from courier.db.models import Delivery, Shipment
from worker import runner

LEASE = 60.0


async def test_concurrent_claimers_each_row_claimed_once(db_url: str, sessions: SessionFactory):
    office = await seed.office(sessions)
    all_ids = await seed.deliveries(sessions, office, 60)
    engines = [make_engine(db_url) for _ in range(4)]  # K separate engines = separate pools
    try:

        async def claimer(k: int) -> list[int]:
            mine: list[int] = []
            factory = make_sessions(engines[k])
            while True:
                got = await claim.claim_deliveries(
                    factory, owner=f"w{k}", now=seed.T0, lease_seconds=LEASE, limit=3
                )
                if not got:
                    return mine
                mine.extend(got)
                await asyncio.sleep(0)  # let the others in between batches

        results = await asyncio.gather(*(claimer(k) for k in range(4)))
    finally:
        for eng in engines:
            await eng.dispose()
    claimed = [i for r in results for i in r]
    assert sorted(claimed) == sorted(all_ids)  # none lost, none twice
    async with sessions() as session:
        rows = (
            await session.execute(select(Delivery.id, Delivery.lease_owner, Delivery.claim_count))
        ).all()
    owners = {i: o for i, o, _ in rows}
    for k, mine in enumerate(results):
        assert all(owners[i] == f"w{k}" for i in mine)
    assert {c for _, _, c in rows} == {1}


def _counted(name: str, kind: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, {"kind": kind}) or 0.0


async def test_expired_lease_is_claimable_again(sessions: SessionFactory):
    office = await seed.office(sessions)
    [d] = await seed.deliveries(sessions, office, 1)
    claims, expiries = (
        _counted("courier_claims_total", "book"),
        _counted("courier_lease_expiries_total", "book"),
    )
    assert await claim.claim_deliveries(
        sessions, owner="a", now=seed.T0, lease_seconds=LEASE, limit=5
    ) == [d]
    still = seed.T0 + timedelta(seconds=LEASE - 1)
    assert (
        await claim.claim_deliveries(sessions, owner="b", now=still, lease_seconds=LEASE, limit=5)
        == []
    )
    later = seed.T0 + timedelta(seconds=LEASE + 1)
    assert await claim.claim_deliveries(
        sessions, owner="b", now=later, lease_seconds=LEASE, limit=5
    ) == [d]
    async with sessions() as session:
        row = await session.get(Delivery, d)
        assert row is not None
        assert (row.lease_owner, row.claim_count) == ("b", 2)
        assert row.lease_until == later + timedelta(seconds=LEASE)
    # both claims counted; the second took over a lease that ran out
    assert _counted("courier_claims_total", "book") == claims + 2
    assert _counted("courier_lease_expiries_total", "book") == expiries + 1


async def test_renewal_keeps_a_live_lease_and_release_frees_it(sessions: SessionFactory):
    office = await seed.office(sessions)
    [d] = await seed.deliveries(sessions, office, 1)
    await claim.claim_deliveries(sessions, owner="a", now=seed.T0, lease_seconds=LEASE, limit=1)
    near_end = seed.T0 + timedelta(seconds=LEASE - 5)
    assert await claim.renew(sessions, owner="a", now=near_end, lease_seconds=LEASE) == 1
    past_first_lease = seed.T0 + timedelta(seconds=LEASE + 10)
    assert (
        await claim.claim_deliveries(
            sessions, owner="b", now=past_first_lease, lease_seconds=LEASE, limit=1
        )
        == []
    )
    assert await claim.held_by(sessions, "a") == 1
    assert await claim.release_all(sessions, owner="a") == 1
    assert await claim.held_by(sessions, "a") == 0
    expiries = _counted("courier_lease_expiries_total", "book")
    assert await claim.claim_deliveries(
        sessions, owner="b", now=past_first_lease, lease_seconds=LEASE, limit=1
    ) == [d]
    # released, not expired: no takeover counted
    assert _counted("courier_lease_expiries_total", "book") == expiries


async def test_priority_and_express_first_then_collect_by(sessions: SessionFactory):
    office = await seed.office(sessions)
    late = await seed.deliveries(sessions, office, 1, start=1, collect_in_days=25)
    soon = await seed.deliveries(sessions, office, 1, start=2, collect_in_days=5)
    urgent = await seed.deliveries(sessions, office, 1, start=3, priority=2, collect_in_days=29)
    express = await seed.deliveries(sessions, office, 1, start=4, priority=1, collect_in_days=9)
    got = await claim.claim_deliveries(
        sessions, owner="a", now=seed.T0, lease_seconds=LEASE, limit=10
    )
    assert got == urgent + express + soon + late
    # a bounded claim takes the best ones only
    await claim.release_all(sessions, owner="a")
    assert (
        await claim.claim_deliveries(sessions, owner="b", now=seed.T0, lease_seconds=LEASE, limit=2)
        == urgent + express
    )


async def test_not_due_and_not_queued_are_left_alone(sessions: SessionFactory):
    office = await seed.office(sessions)
    waiting, shipping = await seed.deliveries(sessions, office, 2)
    async with transaction(sessions) as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.id == waiting)
            .values(next_attempt_at=seed.T0 + timedelta(minutes=5))
        )
        await session.execute(
            update(Delivery).where(Delivery.id == shipping).values(state="shipping")
        )
    assert (
        await claim.claim_deliveries(sessions, owner="a", now=seed.T0, lease_seconds=LEASE, limit=5)
        == []
    )
    assert await claim.claim_deliveries(
        sessions, owner="a", now=seed.T0 + timedelta(minutes=5), lease_seconds=LEASE, limit=5
    ) == [waiting]


async def test_stuck_bookings_claimable_after_expiry_until_max_reconciliations(
    sessions: SessionFactory,
):
    office = await seed.office(sessions)
    d1, d2, d3 = await seed.deliveries(sessions, office, 3)
    async with transaction(sessions) as session:
        for i, (d, reconciled) in enumerate(((d1, 0), (d2, 5), (d3, 1)), start=1):
            session.add(
                Shipment(
                    delivery_id=d,
                    attempt_no=1,
                    courier_code="jnt",
                    client_reference=f"BLT{i:02d}01",
                    status="booking",
                    lease_owner="dead",
                    claim_count=1,
                    reconcile_count=reconciled,
                    lease_until=seed.T0 + timedelta(seconds=LEASE),
                    next_poll_at=seed.T0 + timedelta(hours=2) if d == d3 else None,
                    created_at=seed.T0,
                    updated_at=seed.T0,
                )
            )
    kwargs = {"lease_seconds": LEASE, "limit": 10, "max_reconciliations": 5}
    assert await claim.claim_stuck_bookings(sessions, owner="a", now=seed.T0, **kwargs) == []
    after = seed.T0 + timedelta(seconds=LEASE + 1)
    got = await claim.claim_stuck_bookings(sessions, owner="a", now=after, **kwargs)
    async with sessions() as session:
        rows = await session.execute(select(Shipment.delivery_id, Shipment.id))
        by_delivery = {int(d): int(s) for d, s in rows}
    assert got == [by_delivery[d1]]  # d2 waits for a human, d3 is not due yet
    later = seed.T0 + timedelta(hours=3)
    # d3 is due now, and a's lease on d1 ran out without renewal: both are b's
    assert await claim.claim_stuck_bookings(sessions, owner="b", now=later, **kwargs) == sorted(
        [by_delivery[d1], by_delivery[d3]]
    )


async def test_release_all_keeps_leases_on_shipments_whose_call_may_be_in_flight(
    sessions: SessionFactory,
):
    office = await seed.office(sessions)
    waiting, calling = await seed.deliveries(sessions, office, 2)
    assert await claim.claim_deliveries(
        sessions, owner="a", now=seed.T0, lease_seconds=LEASE, limit=1
    ) == [waiting]
    async with transaction(sessions) as session:  # an intent committed, its create under way
        await session.execute(
            update(Delivery).where(Delivery.id == calling).values(state="shipping")
        )
        session.add(
            Shipment(
                delivery_id=calling,
                attempt_no=1,
                courier_code="jnt",
                client_reference="BLT0101",
                status="booking",
                lease_owner="a",
                claim_count=1,
                reconcile_count=0,
                lease_until=seed.T0 + timedelta(seconds=LEASE),
                created_at=seed.T0,
                updated_at=seed.T0,
            )
        )
    assert await claim.release_all(sessions, owner="a") == 1  # the delivery only
    async with sessions() as session:
        ship = await session.scalar(select(Shipment))
        assert ship is not None and ship.lease_owner == "a"
    # the delivery is anyone's at once; the shipment only once its lease has run out
    assert await claim.claim_deliveries(
        sessions, owner="b", now=seed.T0, lease_seconds=LEASE, limit=5
    ) == [waiting]
    kwargs = {"lease_seconds": LEASE, "limit": 5, "max_reconciliations": 3}
    assert await claim.claim_stuck_bookings(sessions, owner="b", now=seed.T0, **kwargs) == []
    expired = seed.T0 + timedelta(seconds=LEASE + 1)
    assert await claim.claim_stuck_bookings(sessions, owner="b", now=expired, **kwargs) == [ship.id]


def test_worker_ids_differ_between_runs_of_the_same_pid() -> None:
    first, second = runner.default_worker_id(), runner.default_worker_id()
    assert first != second  # a restarted container (PID 1 again) is a new worker
    for worker_id in (first, second):
        assert worker_id.startswith(f"{socket.gethostname()}:{os.getpid()}:"[:40])
        assert len(worker_id) <= 64 and len(worker_id.rsplit(":", 1)[1]) == 8


async def test_backoff_waits_on_the_given_clock_with_the_shared_policy() -> None:
    from core.clock import ManualClock
    from courier.services.booking import retry_delay
    from worker.backoff import Backoff

    clock = ManualClock(seed.T0)
    backoff = Backoff(first=0.5, cap=30.0, clock=clock)
    await backoff.wait()  # on the service clock: no wall time passes, the clock moves
    first = (clock.now() - seed.T0).total_seconds()
    assert 0.5 <= first <= 0.75
    stopping = asyncio.Event()
    stopping.set()
    before = clock.now()
    await backoff.wait(stopping)  # already stopping: returns without waiting
    assert clock.now() == before and backoff.failures == 2
    # booking's courier retry follows the same curve: 30 s doubling to an hour, no jitter
    assert [retry_delay(n) for n in (0, 1, 2, 7, 20)] == [30, 60, 120, 3600, 3600]
    assert retry_delay(0, retry_after=90) == 90
