"""Telling a database outage from a bug, and waiting it out.

PostgreSQL restarting (or a SQLite file briefly locked past its busy timeout) surfaces as one of
several exception types depending on where the connection broke: SQLAlchemy's wrappers, asyncpg's
own errors on the LISTEN connection, or a plain ``ConnectionRefusedError`` while the server is
down. The worker treats every one of them the same way: log, wait (capped exponential), carry
on. Work is never lost by waiting: it is in the database, under a lease that will expire.
"""

from __future__ import annotations

import asyncio

from core.backoff import exponential_backoff
from core.clock import Clock
from courier.db.outage import is_db_outage

__all__ = ["Backoff", "is_db_outage"]


class Backoff:
    """Capped exponential delays with jitter: 0.5, 1, 2, 4 … up to ``cap`` seconds, the one
    policy of core/backoff.py. Waited on ``clock`` when given (the service's one clock);
    without one, on the wall."""

    def __init__(self, first: float = 0.5, cap: float = 30.0, *, clock: Clock | None = None):
        self.first = first
        self.cap = cap
        self.clock = clock
        self.failures = 0

    def next_delay(self) -> float:
        delay = exponential_backoff(
            self.failures, initial=self.first, cap=self.cap, jitter=self.first / 2
        )
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0

    async def wait(self, stopping: asyncio.Event | None = None) -> None:
        """Sleep the next delay; return early when ``stopping`` is set."""
        delay = self.next_delay()
        sleep = self.clock.sleep(delay) if self.clock is not None else asyncio.sleep(delay)
        if stopping is None:
            await sleep
            return
        if stopping.is_set():
            sleep.close()
            return
        sleeper = asyncio.ensure_future(sleep)
        stopper = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                task.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)
