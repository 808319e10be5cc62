"""The one clock. Everything that asks "what time is it" or "wait a while" asks a Clock.

Tests, the courier simulators and the demo drive time instead of sleeping: a :class:`ManualClock`
moves only when told; a :class:`ScaledClock` runs faster than the wall (the demo's three delivery
days in a few minutes). Several processes that build a ScaledClock from the same ``epoch``,
``started`` and ``speed`` agree on the time.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

WIB = ZoneInfo("Asia/Jakarta")


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC datetime."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time (may be far less wall time)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Clock time = epoch + (wall seconds since ``started``) × speed + manual offset."""

    def __init__(self, epoch: datetime, speed: float = 1.0, started: float | None = None) -> None:
        if epoch.tzinfo is None:
            raise ValueError("epoch must be timezone-aware")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.epoch = epoch.astimezone(UTC)
        self.speed = speed
        self.started = time.time() if started is None else started
        self.offset = timedelta()

    def now(self) -> datetime:
        elapsed = (time.time() - self.started) * self.speed
        return self.epoch + timedelta(seconds=elapsed) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class ManualClock:
    """Stands still until :meth:`advance` or :meth:`set`. ``sleep`` yields, then returns at once
    with the clock moved forward by the requested amount: code under test never waits on a wall."""

    def __init__(self, start: datetime | None = None, *, auto_advance: bool = True) -> None:
        start = start or datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._now = start.astimezone(UTC)
        self.auto_advance = auto_advance

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        if delta < timedelta():
            raise ValueError("a clock never goes backwards")
        self._now += delta

    def set(self, when: datetime) -> None:
        when = when.astimezone(UTC)
        if when < self._now:
            raise ValueError("a clock never goes backwards")
        self._now = when

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)
        if self.auto_advance and seconds > 0:
            self._now += timedelta(seconds=seconds)


def to_wib(when: datetime) -> datetime:
    return when.astimezone(WIB)


def from_wib_naive(text: str, fmt: str = "%Y-%m-%d %H:%M:%S") -> datetime:
    """Courier wall-clock strings carry no offset: they are WIB (couriers.md §5.7)."""
    return datetime.strptime(text, fmt).replace(tzinfo=WIB).astimezone(UTC)
