"""`courier work` processes carry a whole batch to rest: every delivery ends handed over or sits
in needs-attention, and every reference has exactly one order at the courier.

Real processes against a real J&T simulator over loopback: one worker on SQLite (the embedded
default), four at once on PostgreSQL. Everything runs on one scaled clock shared through
``clock.started``, so a week of courier time passes in seconds; this test plays the applicants
(half of them confirm on the tracking page, the rest never do).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import tomli_w
import worker_procs as wp
import worker_seed as seed
from aiohttp import web
from sqlalchemy import select, update

from core.clock import ScaledClock
from courier.db.engine import SessionFactory, transaction
from courier.db.models import Application, Delivery, Handover
from courier.domain.references import client_reference
from courier.domain.states import FINAL_DELIVERY_STATES
from courier.services import handover
from courier.services.intake import hash_passport_no
from simulators import jnt as jnt_sim

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SPEED = 40_000.0  # a courier week in about 15 wall seconds
PEPPER = "e2e-work-processes-pepper-0123456789"
PASSPORT_NO = "X1234567"
# forced outcome per delivery, in turn: what the simulated courier does with each parcel
OUTCOMES = (
    "delivered_self",
    "delivered_self",
    "fail_once_then_deliver",
    "delivered_family",
    "delivered_self",
    "lost",
)
AT_REST = {s.value for s in FINAL_DELIVERY_STATES} | {"needs_attention"}


async def _serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def _seed(sessions: SessionFactory, n: int) -> dict[int, str]:
    """``n`` queued deliveries whose passports carry a known number; their client references."""
    office_id = await seed.office(sessions)
    ids = await seed.deliveries(sessions, office_id, n)
    async with transaction(sessions) as session:
        await session.execute(
            update(Application).values(passport_no_hash=hash_passport_no(PEPPER, PASSPORT_NO))
        )
        rows = (
            await session.execute(
                select(Delivery.id, Application.application_no).join(
                    Application, Application.id == Delivery.application_id
                )
            )
        ).all()
    return {d: client_reference("BLT", no, 1) for d, no in rows if d in ids}


def _config(tmp: Path, db_url: str, sim_url: str, started: float) -> Path:
    config: dict[str, Any] = {
        "database_url": db_url,
        "log": {"level": "info", "format": "json"},
        "clock": {"epoch": seed.T0.isoformat(), "speed": SPEED, "started": started},
        # leases and polls in clock time: ten clock hours is under two wall seconds here
        "worker": {
            "lease_seconds": 36_000,
            "poll_seconds": 0.05,
            "grace_seconds": 10,
            "concurrency_per_courier": 4,
        },
        "couriers": {"jnt": jnt_sim.adapter_settings(sim_url)},
        "security": {"passport_pepper": PEPPER},
    }
    path = tmp / "courier.toml"
    path.write_bytes(tomli_w.dumps(config).encode())
    return path


async def _confirm_half(sessions: SessionFactory, clock: ScaledClock, confirmed: set[int]) -> None:
    """Applicants of even-numbered deliveries confirm as soon as the courier has delivered."""
    async with sessions() as session:
        rows = (
            await session.execute(
                select(Delivery.id, Delivery.tracking_token_hash)
                .join(Handover, Handover.delivery_id == Delivery.id)
                .where(Handover.state == "awaiting_confirmation")
            )
        ).all()
    for delivery_id, token_hash in rows:
        if delivery_id % 2 or delivery_id in confirmed:
            continue
        outcome = await handover.confirm_possession(
            sessions, token_hash, PASSPORT_NO, clock.now(), pepper=PEPPER
        )
        assert outcome.outcome is handover.Confirmed.VERIFIED
        confirmed.add(delivery_id)


async def test_work_processes_bring_every_delivery_to_rest(
    backend: str, db_url: str, sessions: SessionFactory, tmp_path: Path
) -> None:
    workers, n = (4, 24) if backend == "postgresql" else (1, 12)
    references = await _seed(sessions, n)
    started = time.time()
    clock = ScaledClock(seed.T0, SPEED, started=started)
    sim = jnt_sim.create_app(clock, options={"seed": "e2e"})
    serving = _serve(sim)
    sim_url = await anext(serving)
    try:
        async with aiohttp.ClientSession() as http:
            for i, reference in enumerate(sorted(references.values())):
                body = {"reference": reference, "outcome": OUTCOMES[i % len(OUTCOMES)]}
                async with http.post(f"{sim_url}/_sim/outcomes", json=body) as resp:
                    assert resp.status == 200, await resp.text()
        config = _config(tmp_path, db_url, sim_url, started)
        confirmed: set[int] = set()
        with wp.processes(tmp_path) as procs:
            procs_ = [
                procs.spawn(
                    [wp.COURIER, "work", "--worker-id", f"w{k}"],
                    {"COURIER_CONFIG": str(config)},
                    f"worker-w{k}",
                )
                for k in range(workers)
            ]

            async def at_rest() -> bool:
                for proc in procs_:
                    assert proc.poll() is None, f"a worker exited\n{procs.logs()}"
                await _confirm_half(sessions, clock, confirmed)
                states = await seed.delivery_states(sessions)
                return len(states) == n and set(states.values()) <= AT_REST

            try:
                await wp.wait_for(at_rest, "every delivery at rest", within=150)
                for proc in procs_:
                    wp.terminate(proc)
                codes = [await wp.wait_exit(proc) for proc in procs_]
            except AssertionError as err:
                raise AssertionError(f"{err}\n{procs.logs()}") from err
        assert codes == [0] * workers
        states = await seed.delivery_states(sessions)
        handed_over = {d for d, s in states.items() if s == "handed_over"}
        # handed over: exactly the applicants who confirmed (nobody reviews family handovers here)
        assert handed_over == confirmed
        # lost parcels, family receivers and applicants who never confirm wait for a person
        # (a passport whose 30-day deadline passed on the scaled clock, on a machine too busy to
        # keep up with it, is rightly expired instead: also a rest that only a person ends)
        waiting = {d for d, s in states.items() if s in {"needs_attention", "expired"}}
        assert waiting == set(states) - confirmed
        if any(s == "expired" for s in states.values()):
            assert clock.now() > seed.T0 + timedelta(days=30)
        async with aiohttp.ClientSession() as http, http.get(f"{sim_url}/_sim/orders") as resp:
            orders = await resp.json()
        assert orders["create_counts"] == {ref: 1 for ref in references.values()}
        ships = await seed.shipments(sessions)
        assert sorted(s.client_reference for s in ships) == sorted(references.values())
    finally:
        await serving.aclose()
