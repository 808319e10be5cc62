"""The courier's limits are per account, not per process (issue 9, Deliver 8): four real
`courier work` processes booking against one J&T simulator that counts every API request per
second and per WIB day. The courier never sees more than the configured rate, the day's quota is
one count for all four, and it holds when they are replaced by a new process: bookings
past it are not sent (a shipment left in ``booking``, due at the next WIB day or, sooner, at the
booking deadline, where a person takes over), neither errors nor retried in a loop.

Every assertion is on what the simulator counted or what the database holds, never on how fast
anything ran: the test's length is process start-up (seconds each on a busy machine) plus
about four seconds of booking. Runs on PostgreSQL only (SQLite runs one worker; the gate's own
tests cover it: tests/integration/db/test_courier_limits.py).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import worker_procs as wp
import worker_seed as seed
from sqlalchemy import select

from core.clock import ScaledClock
from courier.db.engine import SessionFactory
from courier.db.limits import quota_left
from courier.db.models import Shipment

pytestmark = [
    pytest.mark.slow,
    pytest.mark.pg,
    pytest.mark.skipif(
        not os.environ.get("COURIER_TEST_PG_URL"), reason="needs PostgreSQL (COURIER_TEST_PG_URL)"
    ),
]

RATE = 5  # requests per second, the account's contract
QUOTA = 16  # requests per WIB day
WORKERS = 4


# Every process of the test runs one clock that starts at noon WIB: the whole test lies inside
# one WIB day whatever the hour it runs at (a run crossing midnight WIB would see two days).
NOON_WIB = datetime(2026, 11, 3, 5, 0, tzinfo=UTC)  # the day after the seed's T0
CLOCK = ScaledClock(NOON_WIB)


async def _statuses(sessions: SessionFactory) -> dict[str, int]:
    """Shipments by status, with ``booking`` split into due now and deferred (not to be sent
    before a later time: the next WIB day, or the booking deadline where a person takes over,
    whichever comes first)."""
    soon = CLOCK.now().timestamp() + 600
    counts: dict[str, int] = {}
    async with sessions() as session:
        for status, due in await session.execute(select(Shipment.status, Shipment.next_poll_at)):
            key = str(status)
            if key == "booking" and due is not None and due.timestamp() >= soon:
                key = "booking:deferred"
            counts[key] = counts.get(key, 0) + 1
    return counts


def _per_day(traffic: dict[str, Any]) -> int:
    [count] = traffic["per_day"].values()  # one WIB day
    return int(count)


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_four_workers_share_one_rate_and_one_daily_quota_across_restarts(
    backend: str, db_url: str, sessions: SessionFactory, tmp_path: Path
) -> None:
    office = await seed.office(sessions)
    first_batch = QUOTA + 6
    await seed.deliveries(sessions, office, first_batch)
    with wp.processes(tmp_path) as procs:
        sim = wp.Simulator(procs, epoch=NOON_WIB)
        await sim.ready()
        config = wp.write_config(
            tmp_path,
            db_url,
            sim.url,
            clock={"epoch": NOON_WIB.isoformat(), "started": CLOCK.started},
            # two bookings at a time per worker: eight callers compete for every slot
            concurrency_per_courier=2,
            # a busy 2-core test machine may send a request a little after its slot: a wider
            # margin than the default 0.1 s keeps the count honest there too
            transport={"requests_per_second": RATE, "daily_quota": QUOTA, "rate_margin": 0.3},
        )
        workers = [wp.start_worker(procs, config, f"w{i}") for i in range(WORKERS)]
        try:

            async def quota_spent() -> bool:
                return await _statuses(sessions) == {
                    "booked": QUOTA,
                    "booking:deferred": first_batch - QUOTA,
                }

            await wp.wait_for(quota_spent, "the day's quota to be spent", within=50)
            traffic = sim.traffic()
            assert traffic["max_per_second"] <= RATE, traffic["per_second"]
            assert _per_day(traffic) == QUOTA
            assert len(sim.orders()["orders"]) == QUOTA
            async with sessions() as session:
                [left] = await quota_left(session, CLOCK.now())
            assert (left.courier, left.remaining) == ("jnt", 0)

            # every worker replaced by a new process; more passports to send the same day
            for worker in workers:
                wp.terminate(worker)
            for worker in workers:
                assert await wp.wait_exit(worker) == 0
            second_batch = 4
            await seed.deliveries(sessions, office, second_batch, start=first_batch + 1)
            # one new process (each start costs seconds of a busy machine's CPU)
            restarted = wp.start_worker(procs, config, "r0")

            async def all_wait_for_tomorrow() -> bool:
                return await _statuses(sessions) == {
                    "booked": QUOTA,
                    "booking:deferred": first_batch - QUOTA + second_batch,
                }

            await wp.wait_for(all_wait_for_tomorrow, "the new bookings to wait for tomorrow")
            traffic = sim.traffic()
            assert _per_day(traffic) == QUOTA  # the restart gave nothing back
            assert traffic["max_per_second"] <= RATE
            assert "courier.quota_exhausted" in procs.logs()
            wp.terminate(restarted)  # it has been working: its signal handler is in place
            assert await wp.wait_exit(restarted) == 0
        except AssertionError as err:
            raise AssertionError(f"{err}\n{procs.logs()}") from err
