"""PostgreSQL gone from under a running worker: it backs off, reconnects, finishes the batch, and
still books every delivery exactly once.

The worker reaches PostgreSQL through a TCP proxy this test controls (tests/tcp_proxy.py); cutting
it aborts every connection of the worker and refuses new ones, as a server restart would, while
the machine's PostgreSQL and its other clients (this test's own checks included) carry on.
Runs only when COURIER_TEST_PG_URL is set (always in CI, where it must not skip).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import worker_procs as wp
import worker_seed as seed
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy

from courier.db.engine import SessionFactory

pytestmark = [
    pytest.mark.slow,
    pytest.mark.pg,
    pytest.mark.skipif(
        not os.environ.get("COURIER_TEST_PG_URL"), reason="needs PostgreSQL (COURIER_TEST_PG_URL)"
    ),
]


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_worker_survives_losing_postgres_mid_batch(
    backend: str, db_url: str, sessions: SessionFactory, tmp_path: Path
):
    office = await seed.office(sessions)
    total = 12
    await seed.deliveries(sessions, office, total)
    url = make_url(db_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    faults = {"endpoints": {"create": {"latency_ms": [250, 250]}}}  # ~1.5 s for the batch
    with wp.processes(tmp_path) as procs:
        sim = wp.Simulator(procs, faults)
        await sim.ready()
        config = wp.write_config(tmp_path, through_proxy, sim.url, concurrency_per_courier=2)
        worker = wp.start_worker(procs, config, "w1")
        try:

            async def booked_at_least(n: int) -> bool:
                ships = await seed.shipments(sessions)
                return sum(s.status == "booked" for s in ships) >= n

            async def worker_saw_the_outage() -> bool:
                return "worker.db_unavailable" in procs.logs() or worker.poll() is not None

            await wp.wait_for(lambda: booked_at_least(2), "the first bookings")
            assert proxy.connections > 0, "the worker did not connect through the proxy"
            before = sum(s.status == "booked" for s in await seed.shipments(sessions))
            assert before < total, "the batch finished before the outage: nothing was proved"
            await proxy.cut()
            # held down until the worker has run into it, however slow the machine
            await wp.wait_for(worker_saw_the_outage, "the worker to notice the outage", within=60)
            assert worker.poll() is None, "the worker exited when PostgreSQL went away"
            await proxy.resume()
            await wp.wait_for(lambda: booked_at_least(total), "the whole batch", within=90)
            assert worker.poll() is None
            ships = await seed.shipments(sessions)
            assert len(ships) == total
            orders = sim.orders()
            assert orders["create_counts"] == {s.client_reference: 1 for s in ships}
            wp.terminate(worker)
            assert await wp.wait_exit(worker) == 0
        except AssertionError as err:
            raise AssertionError(f"{err}\n{procs.logs()}") from err
        finally:
            await proxy.close()
