"""Booking with an instant courier: the worker's real loop (worker/book.py: claim a batch, then
per delivery the intent committed, the courier called, the result committed) with a courier that
answers at once, so what is measured is our queue and our two transactions, nothing else.

It runs in its own process (spawned, as `courier work` is), so its peak memory is its own and
its CPU is not shared with the load generator's event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import resource
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select

from adapters.base import (
    Booking,
    Capabilities,
    PushReply,
    ShipmentOrder,
    TrackingEvent,
    TrackOutcome,
)
from bench.common import settings_for
from core.clock import SystemClock
from courier import logging as courier_logging
from courier.context import AppContext
from courier.db.engine import make_engine, make_sessions, transaction
from courier.db.models import Application, Delivery, Office, Shipment
from courier.demo import seed as demo_seed
from courier.services import staff
from worker import book

ADDRESS = {
    "street": "Jl. Ijen No. 10",
    "village": "Oro-oro Dowo",
    "district": "Klojen",
    "regency": "Kota Malang",
    "province": "Jawa Timur",
    "postal_code": "65119",
    "regency_code": "35.73",
    "district_code": "35.73.01",
}


class InstantCourier:
    """A courier that books everything at once and says nothing else: the no-op job."""

    code = "jnt"  # the demo office's courier, so routing picks it

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(cancel=False, push=False, find=False, track_batch_size=1)

    async def book(self, order: ShipmentOrder) -> Booking:
        return Booking(reference=order.reference, waybill=f"IN{order.reference}")

    async def find(self, reference: str) -> Booking | None:
        return None

    async def cancel(self, booking: Booking, reason: str) -> None:
        return None

    async def track(self, waybills: Sequence[str]) -> Mapping[str, TrackOutcome]:
        return {w: [] for w in waybills}

    def verify_push(self, headers: Mapping[str, str], body: bytes) -> bool:
        return False

    def parse_push(self, body: bytes) -> list[TrackingEvent]:
        return []

    def push_ack(self, accepted: bool) -> PushReply:
        return PushReply(status=200, body=b"")

    async def close(self) -> None:
        return None


async def seed_queue(url: str, deliveries: int, *, courier: str = "jnt") -> None:
    """The demo office (sending by ``courier``) and ``deliveries`` queued deliveries with complete
    addresses, inserted in bulk (what intake and opt-in would have left behind; their cost is
    measured elsewhere)."""
    engine = make_engine(url)
    sessions = make_sessions(engine)
    now = datetime.now(UTC)
    try:
        async with transaction(sessions) as session:
            office = {**demo_seed.OFFICE, "courier": courier}
            await staff.upsert_office(session, office, now=now, actor="bench")
        async with transaction(sessions) as session:
            office_id = (await session.execute(select(Office.id))).scalar_one()
            collect_by = now + timedelta(days=30)
            await session.execute(
                insert(Application),
                [
                    {
                        "office_id": office_id,
                        "application_no": f"2026{i:08d}",
                        "applicant_name": f"Pemohon {i}",
                        "date_of_birth": date(1990, 1, 1),
                        "phone": f"+6281234{i:06d}",
                        "express": False,
                        "state": "ready",
                        "issued_at": now,
                        "collect_by": collect_by,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(1, deliveries + 1)
                ],
            )
            ids = (await session.execute(select(Application.id))).scalars().all()
            await session.execute(
                insert(Delivery),
                [
                    {
                        "application_id": app_id,
                        "office_id": office_id,
                        "address": ADDRESS,
                        "destination_regency_code": ADDRESS["regency_code"],
                        "consent_at": now,
                        "consent_version": "bench",
                        "tracking_token_hash": hashlib.sha256(f"b{app_id}".encode()).hexdigest(),
                        "state": "queued",
                        "priority": 0,
                        "collect_by": collect_by,
                        "claim_count": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for app_id in ids
                ],
            )
    finally:
        await engine.dispose()


async def _drain(url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    with open(os.devnull, "w", encoding="utf-8") as devnull:  # noqa: ASYNC230 (once, at start)
        courier_logging.configure("info", "json", stream=devnull)
        engine = make_engine(url)
        # set past validation: the configuration caps calls in flight at 64 per courier, and
        # the batch (= in flight × couriers) must equal pgqueuer's 100 to compare like for like
        settings = dataclasses.replace(settings_for(url), concurrency_per_courier=concurrency)
        ctx = AppContext(
            settings,
            engine,
            make_sessions(engine),
            SystemClock(),
            couriers={"jnt": InstantCourier()},
        )
        try:
            started = time.perf_counter()
            deadline = started + seconds
            cycles = 0
            while time.perf_counter() < deadline and await book.once(ctx, "bench-worker"):
                cycles += 1
            elapsed = time.perf_counter() - started
            async with ctx.sessions() as session:
                booked = int(
                    await session.scalar(
                        select(func.count())
                        .select_from(Shipment)
                        .where(Shipment.status == "booked")
                    )
                    or 0
                )
        finally:
            await engine.dispose()
    return {
        "booked": booked,
        "cycles": cycles,
        "batch": book.batch_size(ctx),
        "concurrency_per_courier": concurrency,
        "seconds": round(elapsed, 3),
        "per_second": round(booked / elapsed, 1) if elapsed > 0 else 0.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6,
    }


def drain(url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """In the worker process: book queued deliveries until none are left or ``seconds`` pass.
    ``peak_rss_mb`` is this process's high-water mark so far (Linux counts ru_maxrss in KiB)."""
    return asyncio.run(_drain(url, concurrency, seconds))
