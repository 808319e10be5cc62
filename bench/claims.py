"""Claim throughput: how fast workers take queued deliveries (the claim statement alone)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import insert, select

from courier.db.engine import make_engine, make_sessions, transaction
from courier.db.models import Application, Delivery, Office
from courier.demo import seed as demo_seed
from courier.services import staff
from worker import claim

BATCH = 50


async def bench_claims(url: str, deliveries: int, claimers: int = 1) -> dict[str, Any]:
    """``claimers`` workers, each with its own engine, drain the queue at once; every delivery
    must be claimed exactly once (checked, not assumed)."""
    engine = make_engine(url)
    sessions = make_sessions(engine)
    now = datetime.now(UTC)
    try:
        async with transaction(sessions) as session:
            await staff.upsert_office(session, demo_seed.OFFICE, now=now, actor="bench")
        async with transaction(sessions) as session:
            office_id = (await session.execute(select(Office.id))).scalar_one()
            apps = [
                {
                    "office_id": office_id,
                    "application_no": f"B{i:08d}",
                    "applicant_name": "x",
                    "date_of_birth": date(1980, 1, 1),
                    "phone": "+6281234567890",
                    "express": False,
                    "state": "ready",
                    "issued_at": now,
                    "collect_by": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(deliveries)
            ]
            await session.execute(insert(Application), apps)
            ids = (await session.execute(select(Application.id))).scalars().all()
            await session.execute(
                insert(Delivery),
                [
                    {
                        "application_id": app_id,
                        "office_id": office_id,
                        "address": {},
                        "destination_regency_code": "35.73",
                        "consent_at": now,
                        "consent_version": "bench",
                        "tracking_token_hash": f"{app_id:064d}",
                        "state": "queued",
                        "priority": app_id % 3,
                        "collect_by": now,
                        "claim_count": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for app_id in ids
                ],
            )
        started = time.perf_counter()
        taken = await asyncio.gather(*(_drain(url, f"bench-{k}", now) for k in range(claimers)))
        seconds = time.perf_counter() - started
    finally:
        await engine.dispose()
    every = [d for ids_ in taken for d in ids_]
    if len(every) != len(set(every)) or len(every) != deliveries:
        raise AssertionError(f"claims were not exactly once: {len(every)} for {deliveries}")
    claimed = len(every)
    return {
        "deliveries": deliveries,
        "claimers": claimers,
        "claimed": claimed,
        "batch": BATCH,
        "seconds": round(seconds, 3),
        "per_second": round(claimed / seconds, 1) if seconds else 0.0,
    }


async def _drain(url: str, owner: str, now: datetime) -> list[int]:
    engine = make_engine(url)
    sessions = make_sessions(engine)
    got: list[int] = []
    try:
        while batch := await claim.claim_deliveries(
            sessions, owner=owner, now=now, lease_seconds=600, limit=BATCH
        ):
            got.extend(batch)
    finally:
        await engine.dispose()
    return got
