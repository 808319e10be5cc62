"""Engines and sessions for SQLite (the embedded default) and PostgreSQL (production).

SQLite gets WAL, a busy timeout, foreign keys, and ``BEGIN IMMEDIATE`` for every transaction:
a deferred transaction that reads and later writes can fail with SQLITE_BUSY even with a busy
timeout, because a read lock cannot wait to become a write lock. Taking the write lock up front
serialises writers and lets the claim statement be atomic without row locks.

Both dialects are built with ``hide_parameters=True``: a database error's message then carries
no bound values (names, phones, addresses), whoever logs or re-raises it (invariant 4).

PostgreSQL connections are pooled without a liveness ping per checkout (a round trip on every
transaction, the largest single cost of a short request). A connection that died (the server
restarted, a proxy dropped it) is found when it is used instead: :func:`_on_error` marks every
error :func:`courier.db.outage.is_db_outage` recognises as a disconnect, so SQLAlchemy discards
that connection and every one opened before it, and the failed unit of work surfaces as an
outage (the web answers 503, the worker waits it out and retries). The pool holds
``pool_size`` connections and opens none beyond them (``max_overflow`` 0 by default): overflow
connections are closed as soon as they are returned, so a burst would open and close
connections by the thousand; a checkout past the pool waits instead (``pool_timeout``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from courier.db.outage import is_db_outage

if TYPE_CHECKING:
    from courier.config import Settings

SessionFactory = async_sessionmaker[AsyncSession]


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


POOL_SIZE = 10  # serve's default; `courier work` sizes its pool to its batch (pool_size_for)
WORKER_POOL_CAP = 40  # the most a worker opens unless database.pool_size says otherwise
POOL_TIMEOUT = 30.0  # seconds a checkout waits for a free connection before it is an outage


def pool_size_for(settings: Settings, *, worker: bool) -> int:
    """Connections this process keeps (``database.pool_size`` when set). A worker runs every
    booking of its batch at once, each with its own transaction, beside its renewer, the rate
    gate and the track, inbox, watch and outbox loops: fewer connections than that would make
    jobs wait for one another at the pool instead of at the courier."""
    if settings.db_pool_size is not None:
        return settings.db_pool_size
    if not worker:
        return POOL_SIZE
    wanted = settings.concurrency_per_courier * max(1, len(settings.couriers)) + 6
    # capped: PostgreSQL allows 100 connections by default, shared by every process
    return min(wanted, WORKER_POOL_CAP)


def make_engine(
    url: str, *, pool_size: int = POOL_SIZE, max_overflow: int = 0, **kwargs: Any
) -> AsyncEngine:
    kwargs.setdefault("hide_parameters", True)
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        _sqlite_events(engine)
        return engine
    if kwargs.get("poolclass") is None:
        kwargs.setdefault("pool_size", pool_size)
        kwargs.setdefault("max_overflow", max_overflow)
        kwargs.setdefault("pool_timeout", POOL_TIMEOUT)
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "handle_error", _on_error)
    return engine


def _on_error(context: ExceptionContext) -> None:
    """A connection that broke under a statement is a disconnect, whatever the driver called
    it: asyncpg reports a server restart as several error types SQLAlchemy does not all
    recognise, and an unrecognised one would leave the dead connection in the pool."""
    if context.is_disconnect or context.is_pre_ping:
        return
    original = context.original_exception
    if is_db_outage(original) or (
        original.__cause__ is not None and is_db_outage(original.__cause__)
    ):
        context.is_disconnect = True


def _sqlite_events(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # take transaction control away from the driver so BEGIN IMMEDIATE is ours to emit
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessions(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error."""
    async with sessions() as session, session.begin():
        yield session


@asynccontextmanager
async def one_statement(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for a unit of work that is a single statement (atomic on its own): on
    PostgreSQL it runs in autocommit, one round trip instead of three (BEGIN, the statement,
    COMMIT); SQLite keeps its ``BEGIN IMMEDIATE`` transaction. Never for two statements that
    must commit together."""
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn
            return
        async with conn.begin():
            yield conn
