"""Telling a database outage from a bug, and waiting it out.

PostgreSQL restarting (or a SQLite file briefly locked past its busy timeout) surfaces as one of
several exception types depending on where the connection broke: SQLAlchemy's wrappers, asyncpg's
own errors on the LISTEN connection, or a plain ``ConnectionRefusedError`` while the server is
down. The worker treats every one of them the same way: log, wait (capped exponential), carry
on. Work is never lost by waiting: it is in the database, under a lease that will expire.
"""

from __future__ import annotations

import asyncio
import random

import asyncpg
from sqlalchemy import exc as sa_exc

_ASYNCPG_OUTAGES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # connection lost / refused by the server
    asyncpg.InterfaceError,  # connection closed under us
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, "starting up"
)


def is_db_outage(err: BaseException) -> bool:
    """True for errors that mean "the database is not reachable right now"."""
    if isinstance(err, sa_exc.DBAPIError):
        if err.connection_invalidated:
            return True
        if isinstance(err, sa_exc.OperationalError | sa_exc.InterfaceError):
            return True
        return isinstance(err.orig, _ASYNCPG_OUTAGES) or isinstance(
            getattr(err.orig, "__cause__", None), _ASYNCPG_OUTAGES
        )
    if isinstance(err, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return True  # TimeoutError: pool checkout timed out while connections were being rebuilt
    return isinstance(err, _ASYNCPG_OUTAGES | OSError | ConnectionError)


class Backoff:
    """Capped exponential delays with jitter: 0.5, 1, 2, 4 … up to ``cap`` seconds (wall time:
    an outage is measured on the wall, whatever clock the service runs on)."""

    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.first * (2**self.failures))
        self.failures += 1
        return delay * random.uniform(0.8, 1.0)

    def reset(self) -> None:
        self.failures = 0

    async def wait(self, stopping: asyncio.Event | None = None) -> None:
        """Sleep the next delay; return early when ``stopping`` is set."""
        delay = self.next_delay()
        if stopping is None:
            await asyncio.sleep(delay)
            return
        try:
            await asyncio.wait_for(stopping.wait(), timeout=delay)
        except TimeoutError:
            return
