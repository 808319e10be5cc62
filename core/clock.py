"""The one clock. Everything that asks "what time is it" or "wait a while" asks a Clock.

Tests, the courier simulators and the demo drive time instead of sleeping: a :class:`ManualClock`
moves only when told; a :class:`ScaledClock` runs faster than the wall; a :class:`WaitingClock`
(the demo's) moves only when its driver sees the work done, and its sleeps wait for that.
Several processes that build a ScaledClock from the same ``epoch``,
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


class WaitingClock:
    """A clock that waits for the system: it stands still until its driver moves it, and
    :meth:`sleep` waits until the clock has really moved that far (a ManualClock's sleep moves
    the clock itself; a ScaledClock's runs on the wall, whatever the work). The demo drives one:
    while work is due it stays put (or creeps to a sleeper due within moments), and when the
    system is idle it jumps to the next due event, so simulated time can never outrun pending
    work however busy the machine is.

    ``speed`` is what :func:`worker.loop.poll_interval` reads to size idle polls in clock
    seconds: 1, because clock seconds here pass only when the driver says so."""

    speed = 1.0

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._now = start.astimezone(UTC)
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    @property
    def sleeping(self) -> int:
        """How many waits on this clock are pending (each a loop that has nothing to do)."""
        return len(self._sleepers)

    def next_wake(self) -> datetime | None:
        """When the earliest pending wait ends (None: nobody waits on this clock)."""
        return min((at for at, _ in self._sleepers), default=None)

    def advance_to(self, when: datetime) -> None:
        """Move to ``when`` (never back) and release every wait that has ended by then."""
        self._now = max(self._now, when.astimezone(UTC))
        when = self._now
        still = []
        for at, waiter in self._sleepers:
            if at <= when:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still.append((at, waiter))
        self._sleepers = still

    def advance(self, delta: timedelta) -> None:
        if delta < timedelta():
            raise ValueError("a clock never goes backwards")
        self.advance_to(self._now + delta)

    async def sleep(self, seconds: float) -> None:
        until = self._now + timedelta(seconds=max(0.0, seconds))
        if until <= self._now:  # nothing to wait for (below the clock's microsecond)
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (until, waiter)
        self._sleepers.append(entry)
        try:
            await waiter
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)


def to_wib(when: datetime) -> datetime:
    return when.astimezone(WIB)


def from_wib_naive(text: str, fmt: str = "%Y-%m-%d %H:%M:%S") -> datetime:
    """Courier wall-clock strings carry no offset: they are WIB (couriers.md §5.7)."""
    return datetime.strptime(text, fmt).replace(tzinfo=WIB).astimezone(UTC)
