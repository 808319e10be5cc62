"""Waking the workers when there is new work, instead of making them poll.

On PostgreSQL a ``NOTIFY`` issued inside a transaction is delivered when (and only if) that
transaction commits, so a worker woken by it always finds the committed row. SQLite has no such
thing; workers there poll every ``worker.poll_seconds``.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

#: The channel `courier work` listens on (worker/notify.py).
QUEUED_CHANNEL = "courier_queued"


async def notify_queued(session: AsyncSession) -> None:
    """Call in the transaction that moves a delivery to ``queued``: wakes the booking loop of
    every listening worker at commit. Does nothing on SQLite."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.execute(text(f"NOTIFY {QUEUED_CHANNEL}"))
