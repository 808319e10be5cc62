"""The PostgreSQL pool pings nothing before a checkout (issue 14: a round trip on every
transaction); a connection the server dropped is found when it is used instead: that one unit
of work fails as an outage (the web's 503, the worker's wait), and the pool then replaces the
dead connection and every one opened before it, so the next unit of work succeeds."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from courier.db.engine import make_engine
from courier.db.outage import is_db_outage

# PostgreSQL only (SQLite has no server to drop a connection); without COURIER_TEST_PG_URL this
# fails, as every PostgreSQL test does, rather than skipping
pytestmark = pytest.mark.parametrize("backend", ["postgresql"])


async def test_a_dropped_connection_is_one_outage_then_replaced(db_url: str, backend: str) -> None:
    engine = make_engine(db_url, pool_size=3)
    admin = make_engine(db_url, pool_size=1)
    try:
        pids = set()
        async with engine.connect() as a, engine.connect() as b:  # two pooled connections
            for conn in (a, b):
                pids.add(await conn.scalar(text("SELECT pg_backend_pid()")))
        async with admin.connect() as conn:
            for pid in pids:  # what a server restart or an idle timeout does to them
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

        with pytest.raises(Exception) as failed:
            async with engine.connect() as conn:
                await conn.scalar(text("SELECT 1"))
        assert is_db_outage(failed.value), repr(failed.value)

        # both dead connections are gone: two at once now work, on new backends
        async with engine.connect() as a, engine.connect() as b:
            fresh = {await c.scalar(text("SELECT pg_backend_pid()")) for c in (a, b)}
        assert not fresh & pids
    finally:
        await engine.dispose()
        await admin.dispose()
