"""Wake-ups: LISTEN/NOTIFY on PostgreSQL, polling everywhere.

A :class:`Waker` is what a loop waits on between claims. It returns when a ``NOTIFY
courier_queued`` arrives (PostgreSQL only; sent by courier/services/wakeups.py in the transaction
that queues a delivery) or after ``poll_seconds``, whichever comes first. Polling is never
switched off: a LISTEN connection can die silently (pgqueuer and procrastinate both keep polling
as the safety net), and SQLite has no notifications at all.

The listener has its own asyncpg connection, outside the SQLAlchemy pool: a pooled connection
is handed back after each use and would drop the LISTEN. When the connection is lost (PostgreSQL
restarted) the listener reconnects with capped backoff and wakes the loop once, since a
notification may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import structlog

from courier.db.queue import asyncpg_dsn
from courier.services.wakeups import QUEUED_CHANNEL
from worker.backoff import Backoff, is_db_outage

log = structlog.get_logger()


class Waker:
    """Wait for "new work" or ``poll_seconds`` (wall time), whichever comes first."""

    def __init__(self, database_url: str, poll_seconds: float, channel: str = QUEUED_CHANNEL):
        self.poll_seconds = poll_seconds
        self.channel = channel
        self._dsn = asyncpg_dsn(database_url)
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self.listening = asyncio.Event()  # set while a LISTEN connection is up (for tests)
        self.wakeups = 0

    async def __aenter__(self) -> Waker:
        if self._dsn is not None:
            self._task = asyncio.create_task(self._listen(), name="waker-listen")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        self._event.set()

    async def wait(self, stopping: asyncio.Event | None = None) -> bool:
        """True when woken by a notification (or :meth:`wake`, or ``stopping``), False when
        the poll interval ran out."""
        waiters = [asyncio.ensure_future(self._event.wait())]
        if stopping is not None:
            waiters.append(asyncio.ensure_future(stopping.wait()))
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for w in waiters:
                w.cancel()
        woken = bool(done)
        self._event.clear()
        return woken

    def _on_notify(self, *_: Any) -> None:
        self.wakeups += 1
        self._event.set()

    async def _listen(self) -> None:
        backoff = Backoff(first=0.5, cap=15.0)
        while not self._closing.is_set():
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(self.channel, self._on_notify)
                self.listening.set()
                backoff.reset()
                self._event.set()  # we may have missed a NOTIFY while disconnected
                log.info("worker.listen", channel=self.channel)
                await _until_lost(conn, lost)
                log.warning("worker.listen_lost", channel=self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if not is_db_outage(err):
                    log.exception("worker.listen_failed", channel=self.channel)
                else:
                    log.warning("worker.listen_unavailable", exc_type=type(err).__name__)
            finally:
                self.listening.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), timeout=2)
            await backoff.wait(self._closing)


async def _until_lost(conn: Any, lost: asyncio.Event) -> None:
    """Return when the connection is gone. The termination callback catches a clean close; a
    cheap query every few seconds catches a half-open socket the callback would miss."""
    while not lost.is_set():
        try:
            await asyncio.wait_for(lost.wait(), timeout=5.0)
        except TimeoutError:
            try:
                await asyncio.wait_for(conn.execute("SELECT 1"), timeout=5.0)
            except Exception:
                return
