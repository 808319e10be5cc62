"""The database's rate gate (courier/db/limits.py) on a SQLite file and on PostgreSQL: callers on
several engines (as several processes would be) never get two slots closer than the account's
interval, the day's quota is one count for all of them, and it survives a new engine (a
restarted process) until the next WIB day. Time is a ManualClock: nothing waits on the wall."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.base import CourierUnavailable
from adapters.http import Admission, RateLimits
from core.clock import ManualClock
from courier.db.engine import make_engine, make_sessions
from courier.db.limits import DatabaseGate, quota_left

# 22:00 WIB: two hours before the quota's day ends
EVENING = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


async def _acquire_all(
    gates: list[DatabaseGate], n: int, limits: RateLimits, now: datetime
) -> list[Admission]:
    return list(
        await asyncio.gather(*(gates[i % len(gates)].acquire("jnt", limits, now) for i in range(n)))
    )


async def test_concurrent_callers_on_several_engines_get_distinct_spaced_slots(
    db_url: str, engine: AsyncEngine
) -> None:
    other = make_engine(db_url)
    try:
        gates = [DatabaseGate(engine), DatabaseGate(other)]
        limits = RateLimits(interval=0.25, daily_quota=None)
        clock = ManualClock(EVENING)
        admissions = await _acquire_all(gates, 24, limits, clock.now())
    finally:
        await other.dispose()
    slots = sorted(a.wait for a in admissions)
    assert slots[0] == 0.0  # the first goes at once
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) == pytest.approx(0.25, abs=1e-6)
    # at 4 per second, no one-second window holds more than 4 slots
    assert max(sum(1 for s in slots if start <= s < start + 1) for start in slots) == 4
    assert all(a.remaining is None and a.refused_for is None for a in admissions)


async def test_an_idle_account_starts_again_from_now(engine: AsyncEngine) -> None:
    gate = DatabaseGate(engine)
    limits = RateLimits(interval=0.5, daily_quota=None)
    clock = ManualClock(EVENING)
    assert (await gate.acquire("jnt", limits, clock.now())).wait == 0
    assert (await gate.acquire("jnt", limits, clock.now())).wait == pytest.approx(0.5)
    clock.advance(timedelta(seconds=10))
    assert (await gate.acquire("jnt", limits, clock.now())).wait == 0
    # another courier is another account
    assert (await gate.acquire("posind", limits, clock.now())).wait == 0


async def test_a_slot_far_ahead_is_taken_for_clocks_that_disagree(engine: AsyncEngine) -> None:
    gate = DatabaseGate(engine)
    limits = RateLimits(interval=0.5, daily_quota=None)
    await gate.acquire("jnt", limits, EVENING + timedelta(hours=1))  # a worker in the future
    assert (await gate.acquire("jnt", limits, EVENING)).wait == 0


async def test_the_daily_quota_is_shared_and_survives_a_new_engine(
    db_url: str, engine: AsyncEngine
) -> None:
    limits = RateLimits(interval=0.1, daily_quota=5)
    clock = ManualClock(EVENING)
    other = make_engine(db_url)
    try:
        admissions = await _acquire_all(
            [DatabaseGate(engine), DatabaseGate(other)], 8, limits, clock.now()
        )
    finally:
        await other.dispose()
    admitted = [a for a in admissions if a.refused_for is None]
    refused = [a for a in admissions if a.refused_for is not None]
    assert len(admitted) == 5 and len(refused) == 3
    assert sorted(a.remaining for a in admitted if a.remaining is not None) == [0, 1, 2, 3, 4]
    # refused until midnight WIB, two hours away
    assert all(a.refused_for == pytest.approx(7200) and a.remaining == 0 for a in refused)

    # a restarted process: a new engine, the same database
    clock.advance(timedelta(hours=1, minutes=59))
    restarted = make_engine(db_url)
    try:
        gate = DatabaseGate(restarted)
        again = await gate.acquire("jnt", limits, clock.now())
        assert again.refused_for == pytest.approx(60)
        async with make_sessions(restarted)() as session:
            assert [(q.courier, q.remaining) for q in await quota_left(session, clock.now())] == [
                ("jnt", 0)
            ]
        clock.advance(timedelta(minutes=1))  # 00:00 WIB: a new day, a new quota
        async with make_sessions(restarted)() as session:
            assert [q.remaining for q in await quota_left(session, clock.now())] == [5]
        fresh = await gate.acquire("jnt", limits, clock.now())
        assert fresh.refused_for is None and fresh.remaining == 4
    finally:
        await restarted.dispose()


async def test_a_database_that_cannot_answer_is_courier_unavailable() -> None:
    # nothing listens on port 1: the call is refused before anything reached the courier
    broken = make_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    try:
        with pytest.raises(CourierUnavailable, match="rate gate unavailable"):
            await DatabaseGate(broken).acquire(
                "jnt", RateLimits(interval=1, daily_quota=None), EVENING
            )
    finally:
        await broken.dispose()
