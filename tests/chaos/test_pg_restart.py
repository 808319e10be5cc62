"""PostgreSQL restarted under a running worker: it backs off, reconnects, finishes the batch, and
still books every delivery exactly once.

Runs only when COURIER_TEST_PG_URL is set (always in CI). There it must not skip: if the cluster
cannot be restarted the test fails, since then nothing was proved.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import worker_procs as wp
import worker_seed as seed

from courier.db.engine import SessionFactory

pytestmark = [
    pytest.mark.slow,
    pytest.mark.pg,
    pytest.mark.skipif(
        not os.environ.get("COURIER_TEST_PG_URL"), reason="needs PostgreSQL (COURIER_TEST_PG_URL)"
    ),
]


def _restart_postgres() -> None:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    tool = shutil.which("pg_ctlcluster")
    if not versions or tool is None:
        pytest.fail("cannot restart PostgreSQL here: no pg_ctlcluster or /etc/postgresql")
    done = subprocess.run(
        [tool, "--skip-systemctl-redirect", versions[-1], "main", "restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"PostgreSQL restart failed ({done.returncode}): {done.stderr.strip()}")


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_worker_survives_a_postgres_restart(
    backend: str, db_url: str, sessions: SessionFactory, tmp_path: Path
):
    office = await seed.office(sessions)
    total = 12
    await seed.deliveries(sessions, office, total)
    faults = {"endpoints": {"create": {"latency_ms": [250, 250]}}}  # ~1.5 s for the batch
    with wp.processes(tmp_path) as procs:
        sim = wp.Simulator(procs, faults)
        await sim.ready()
        config = wp.write_config(tmp_path, db_url, sim.url, concurrency_per_courier=2)
        worker = wp.start_worker(procs, config, "w1")
        try:

            async def booked_at_least(n: int) -> bool:
                ships = await seed.shipments(sessions)
                return sum(s.status == "booked" for s in ships) >= n

            await wp.wait_for(lambda: booked_at_least(2), "the first bookings")
            await asyncio.to_thread(_restart_postgres)
            assert worker.poll() is None, "the worker exited when PostgreSQL went away"
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
