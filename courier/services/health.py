"""Readiness: the database answers and its schema is at the migrations' head (a process on an
old schema must not take traffic)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import structlog
from sqlalchemy import text

from courier.context import AppContext
from courier.db.migrate import current_revision, head_revision

log = structlog.get_logger("courier.health")


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    revision: str | None  # the database's schema revision, when it answered
    path: str = ""  # what is not ready, as a field path of the one error shape
    message: str = ""


@cache
def _head() -> str:
    return head_revision()  # reads the migration scripts from disk: once per process


async def readiness(ctx: AppContext) -> Readiness:
    try:
        async with ctx.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        current = await current_revision(ctx.engine)
    except Exception as err:  # any failure to reach the database means "not ready"
        log.warning("readyz_database_unreachable", exc_type=type(err).__name__)
        return Readiness(False, None, "database", "database is not reachable")
    head = _head()
    if current != head:
        return Readiness(
            False,
            current,
            "database.revision",
            f"schema at {current or 'base'}, expected {head}: run migrate",
        )
    return Readiness(True, current)
