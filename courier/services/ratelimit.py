"""Failure counters in the database, shared by every `serve` process (fixed windows).

Used where a guess must stay expensive: opt-in identity checks (the handover confirmation counts
its wrong numbers on the handover row itself, the same way: reserved before the check). Keys
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

from sqlalchemy import case, delete, literal, update
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


async def take(
    session: AsyncSession,
    scope: str,
    key: str,
    *,
    now: datetime,
    limit: int,
    window: timedelta,
) -> int | None:
    """Count one try of ``key`` BEFORE the check it guards, in one statement (INSERT … ON
    CONFLICT DO UPDATE … RETURNING): concurrent tries, in any process, each see the count their
    own increment made, so no more than ``limit`` of them per window ever get past this. Returns
    None when this try may go on, else the seconds until the window ends (the try is counted
    either way). A try that turns out good is given back with :func:`refund`, so the counter
    counts failures. A counter whose window has passed starts again at 1."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stale = RateCounter.window_start <= literal(now - window, UTCDateTime())
    stmt = insert(RateCounter).values(scope=scope, key=key, window_start=now, count=1)
    upsert = stmt.on_conflict_do_update(
        index_elements=["scope", "key"],
        set_={
            "count": case((stale, 1), else_=RateCounter.count + 1),
            "window_start": case(
                (stale, literal(now, UTCDateTime())), else_=RateCounter.window_start
            ),
        },
    ).returning(RateCounter.count, RateCounter.window_start)
    count, window_start = (await session.execute(upsert)).one()
    if count <= limit:
        return None
    return max(1, math.ceil((window_start + window - now).total_seconds()))


async def refund(
    session: AsyncSession, scope: str, key: str, *, now: datetime, window: timedelta
) -> None:
    """Give back a try counted by :func:`take` that turned out good (same window only); a
    counter back at 0 is removed, so a good try leaves no row behind."""
    this = (RateCounter.scope == scope, RateCounter.key == key)
    await session.execute(
        update(RateCounter)
        .where(
            *this,
            RateCounter.count > 0,
            RateCounter.window_start > literal(now - window, UTCDateTime()),
        )
        .values(count=RateCounter.count - 1)
    )
    await session.execute(delete(RateCounter).where(*this, RateCounter.count <= 0))
