"""The demo's clock waits for the system (issue 10): a sleep ends only when the driver has moved
the clock that far, never because wall time passed; the driver can see the earliest wait."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from core.clock import WaitingClock

START = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


async def test_a_sleep_ends_when_the_clock_is_moved_not_when_the_wall_moves() -> None:
    clock = WaitingClock(START)
    sleeper = asyncio.create_task(clock.sleep(60))
    for _ in range(20):  # the event loop runs on; the clock does not
        await asyncio.sleep(0)
    assert not sleeper.done()
    assert clock.sleeping == 1 and clock.next_wake() == START + timedelta(seconds=60)
    clock.advance(timedelta(seconds=59))
    await asyncio.sleep(0)
    assert not sleeper.done() and clock.now() == START + timedelta(seconds=59)
    clock.advance_to(START + timedelta(hours=2))  # a jump past it releases it
    await asyncio.wait_for(sleeper, timeout=5)
    assert clock.sleeping == 0 and clock.next_wake() is None


async def test_a_cancelled_sleep_leaves_no_waiter_and_the_clock_never_goes_back() -> None:
    clock = WaitingClock(START)
    sleeper = asyncio.create_task(clock.sleep(5))
    await asyncio.sleep(0)
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper
    assert clock.sleeping == 0
    clock.advance_to(START - timedelta(hours=1))
    assert clock.now() == START
    with pytest.raises(ValueError):
        clock.advance(timedelta(seconds=-1))
    await clock.sleep(1e-9)  # below a microsecond: nothing to wait for
    assert clock.sleeping == 0
