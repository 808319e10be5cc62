"""Wake-ups: a NOTIFY in the queuing transaction wakes a listening worker at commit (PG);
polling is the fallback everywhere."""

from __future__ import annotations

import asyncio

from courier.db.engine import SessionFactory, transaction
from courier.services.wakeups import notify_queued
from worker.notify import Waker


async def test_queued_notification_wakes_the_worker(
    db_url: str, backend: str, sessions: SessionFactory
):
    poll = 30.0 if backend == "postgresql" else 0.05
    async with Waker(db_url, poll_seconds=poll) as waker:
        if backend == "postgresql":
            await asyncio.wait_for(waker.listening.wait(), timeout=10)
            await waker.wait()  # the wake-up every (re)connect gives
        async with transaction(sessions) as session:
            await notify_queued(session)
        woken = await waker.wait()
    # PG: woken by the NOTIFY long before the 30 s poll; SQLite: the poll interval ran out
    assert woken is (backend == "postgresql")
    assert waker.wakeups == (1 if backend == "postgresql" else 0)
