"""Booking throughput: the worker's booking loop against the J&T simulator on loopback, on a
ScaledClock (intent committed, courier called, result committed: invariant 1's three steps)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from adapters import registry
from adapters.http import close_shared_session
from bench.common import settings_for
from core.clock import ScaledClock
from courier import metrics
from courier.context import AppContext
from courier.db.engine import make_engine, make_sessions
from courier.db.models import Delivery, Shipment
from simulators import jnt as jnt_simulator
from worker import book


async def bench_booking(url: str, concurrency: int = 8) -> dict[str, Any]:
    clock = ScaledClock(datetime.now(UTC), 60.0)
    runner = web.AppRunner(jnt_simulator.create_app(clock), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    jnt = jnt_simulator.adapter_settings(f"http://127.0.0.1:{port}")
    settings = settings_for(
        url, couriers={"jnt": jnt}, worker={"concurrency_per_courier": concurrency}
    )
    engine = make_engine(url)
    adapter = registry.create("jnt", jnt, clock=clock, observer=metrics.PrometheusObserver())
    ctx = AppContext(settings, engine, make_sessions(engine), clock, couriers={"jnt": adapter})
    try:
        async with ctx.sessions() as session:
            queued = int(
                await session.scalar(
                    select(func.count()).select_from(Delivery).where(Delivery.state == "queued")
                )
                or 0
            )
        started = time.perf_counter()
        while await book.once(ctx, "bench-worker"):
            pass
        seconds = time.perf_counter() - started
        async with ctx.sessions() as session:
            booked = int(
                await session.scalar(
                    select(func.count()).select_from(Shipment).where(Shipment.status == "booked")
                )
                or 0
            )
    finally:
        await adapter.close()
        await close_shared_session()  # the adapters' shared session for this event loop
        await engine.dispose()
        await runner.cleanup()
    return {
        "queued": queued,
        "booked": booked,
        "concurrency_per_courier": concurrency,
        "seconds": round(seconds, 3),
        "per_second": round(booked / seconds, 1) if seconds else 0.0,
    }
