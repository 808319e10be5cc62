"""Failure counters in the database, shared by every `serve` process (fixed windows).

Used where a guess must stay expensive: opt-in identity checks, handover confirmations. Keys
are HMAC-SHA256 of the value under a server secret, so the table never holds an application
number or a client address in the clear. That secret is derived from the pepper for this one
purpose (:func:`counter_key`): the pepper that guards the passport hashes is never used as a key
anywhere else.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import datetime, timedelta

from sqlalchemy import case, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from courier.db.models import RateCounter, UTCDateTime
from courier.services import hashing

PURPOSE = "rate-limit"


def counter_key(pepper: str) -> str:
    """The secret of the counters' keys: HMAC(pepper, "rate-limit"), never the pepper itself."""
    return hashing.derive_key(pepper, PURPOSE).hex()


def key_hash(secret: str, value: str) -> str:
    return hmac.new(secret.encode("utf-8"), value.encode("utf-8"), hashlib.sha256).hexdigest()


async def blocked_for(
    session: AsyncSession,
    scope: str,
    key: str,
    *,
    now: datetime,
    limit: int,
    window: timedelta,
) -> int | None:
    """Seconds until ``key`` may try again, or None when it is not blocked."""
    row = (
        await session.execute(
            select(RateCounter).where(RateCounter.scope == scope, RateCounter.key == key)
        )
    ).scalar_one_or_none()
    if row is None or row.count < limit or row.window_start + window <= now:
        return None
    return max(1, math.ceil((row.window_start + window - now).total_seconds()))


async def record_failure(
    session: AsyncSession, scope: str, key: str, *, now: datetime, window: timedelta
) -> None:
    """Count one failure, atomically across processes (INSERT … ON CONFLICT DO UPDATE): a
    counter whose window has passed starts again at 1."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stale = RateCounter.window_start <= literal(now - window, UTCDateTime())
    stmt = insert(RateCounter).values(scope=scope, key=key, window_start=now, count=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=["scope", "key"],
        set_={
            "count": case((stale, 1), else_=RateCounter.count + 1),
            "window_start": case(
                (stale, literal(now, UTCDateTime())), else_=RateCounter.window_start
            ),
        },
    )
    await session.execute(stmt)
