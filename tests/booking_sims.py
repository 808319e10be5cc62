"""The booking tests' courier simulators on loopback and the service context that books
against them: J&T and Pos Indonesia servers, one ManualClock shared with the service, a fast
transport. Imported as ``booking_sims`` by the booking and routing tests (its fixtures with it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import worker_seed as seed
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import registry
from core.clock import ManualClock
from courier.config import Settings
from courier.context import AppContext
from courier.db.engine import SessionFactory
from simulators import jnt as jnt_sim
from simulators import posind as pos_sim

# the simulators hold a "lost" answer this long (wall); the client gives up well before
HOLD_SECONDS = 3.0
FAST_TRANSPORT = {
    "connect_timeout": 1,
    "read_timeout": 0.3,
    "total_timeout": 0.5,
    "max_attempts": 2,
    "backoff_initial": 0.01,
    "backoff_max": 0.05,
}


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
    return {
        "jnt": {**jnt, "transport": FAST_TRANSPORT},
        "posind": {**pos, "transport": FAST_TRANSPORT},
    }


@pytest.fixture
async def ctx(
    db_url: str,
    engine: AsyncEngine,
    sessions: SessionFactory,
    clock: ManualClock,
    sims: dict[str, Sim],
) -> AsyncIterator[AppContext]:
    couriers = courier_settings(sims)
    settings = Settings(
        raw={},
        database_url=db_url,
        lease_seconds=60,
        max_reconciliations=3,
        concurrency_per_courier=2,
        couriers=couriers,
    )
    adapters = {code: registry.create(code, s, clock=clock) for code, s in couriers.items()}
    yield AppContext(
        settings=settings, engine=engine, sessions=sessions, clock=clock, couriers=adapters
    )
    for adapter in adapters.values():
        await adapter.close()
