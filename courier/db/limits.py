"""The couriers' limits kept in the database: one account's rate and daily quota, shared by
every process of a deployment (any number of `courier work` and `courier serve` on PostgreSQL,
the one worker on SQLite) and kept across restarts.

:class:`DatabaseGate` is the :class:`adapters.http.RateGate` the composition root wires into
every courier transport. Each acquire is ONE statement, atomic on both databases::

    INSERT INTO courier_limits … ON CONFLICT (courier) DO UPDATE
        SET next_slot = max(next_slot, now) + interval,
            used      = (used if day = today else 0) + 1, day = today
        WHERE day <> today OR used < daily_quota      -- the quota is not spent
    RETURNING next_slot, used

Concurrent callers are serialised by the row (PostgreSQL's row lock, SQLite's write lock), so
each one reserves its own slot ``interval`` after the previous one and waits for it on the
clock: however many processes send, the courier sees at most one request per interval. No row
returned means today's quota is spent: nothing is reserved, and the caller is told how long
until the next WIB day. The day is the WIB date of the caller's clock (core/clock.py).

Times are epoch seconds in a double: the same arithmetic on SQLite and PostgreSQL, and exact
enough (well under a microsecond) for slots a fraction of a second apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import case, literal, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from adapters.base import CourierUnavailable
from adapters.http import (
    MAX_QUEUE_SECONDS,
    Admission,
    RateLimits,
    next_wib_day,
    wib_day,
)
from courier.db.models import CourierLimit

LIMITS = CourierLimit.__table__


class DatabaseGate:
    """The :class:`adapters.http.RateGate` kept in ``courier_limits`` (one row per courier)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        dialect = engine.dialect.name
        self._insert = pg_insert if dialect == "postgresql" else sqlite_insert

    async def acquire(self, courier: str, limits: RateLimits, now: datetime) -> Admission:
        t = now.timestamp()
        today = wib_day(now)
        c = LIMITS.c
        fresh = {
            "courier": courier,
            "next_slot": t + limits.interval,
            "day": today,
            "used": 1,
            "daily_quota": limits.daily_quota,
            "updated_at": now,
        }
        # the slot this request gets: the reserved one, or now when the schedule is idle (or
        # absurdly far ahead: processes whose clocks disagree, see MAX_QUEUE_SECONDS)
        start = case(
            (or_(c.next_slot < t, c.next_slot > t + MAX_QUEUE_SECONDS), literal(t)),
            else_=c.next_slot,
        )
        same_day = c.day == today
        insert = self._insert(CourierLimit).values(fresh)
        stmt = insert.on_conflict_do_update(
            index_elements=[c.courier],
            set_={
                "next_slot": start + limits.interval,
                "used": case((same_day, c.used), else_=0) + 1,
                "day": literal(today),
                "daily_quota": insert.excluded.daily_quota,
                "updated_at": insert.excluded.updated_at,
            },
            where=(
                None if limits.daily_quota is None else or_(~same_day, c.used < limits.daily_quota)
            ),
        ).returning(c.next_slot, c.used)
        try:
            async with self._engine.begin() as conn:
                row = (await conn.execute(stmt)).first()
        except (SQLAlchemyError, OSError) as err:
            raise CourierUnavailable(
                courier, f"rate gate unavailable: {type(err).__name__}"
            ) from err
        if row is None:  # the row exists and today's quota is spent
            return Admission(refused_for=next_wib_day(now), remaining=0)
        next_slot, used = float(row[0]), int(row[1])
        remaining = None if limits.daily_quota is None else max(0, limits.daily_quota - used)
        return Admission(wait=max(0.0, next_slot - limits.interval - t), remaining=remaining)


@dataclass(frozen=True)
class QuotaLeft:
    courier: str
    daily_quota: int
    remaining: int


async def quota_left(session: AsyncSession, now: datetime) -> list[QuotaLeft]:
    """Today's quota left per courier that has one (for /metrics): a courier not used yet
    today has all of it."""
    today: date = wib_day(now)
    c = LIMITS.c
    rows = (
        await session.execute(
            select(c.courier, c.daily_quota, c.day, c.used).where(c.daily_quota.is_not(None))
        )
    ).all()
    left = []
    for courier, quota, day, used in rows:
        spent = int(used) if _as_date(day) == today else 0
        left.append(QuotaLeft(str(courier), int(quota), max(0, int(quota) - spent)))
    return left


def _as_date(value: object) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
