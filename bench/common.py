"""What the benchmarks share: scratch PostgreSQL databases (migrated or empty) and settings."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.engine import make_url

from courier import config
from courier.db.migrate import upgrade

PEPPER = "bench-pepper-0123456789abcdef-ghijkl"


def settings_for(url: str, **extra: Any) -> config.Settings:
    return config.from_mapping(
        {
            "database_url": url,
            "log": {"level": "warning", "format": "json"},
            "security": {"passport_pepper": PEPPER, "optin_max_failures": 100},
            **extra,
        },
        source="bench",
    )


def admin_url(server_url: str) -> str:
    """The plain ``postgresql://`` form asyncpg and libpq tools take."""
    return make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def scratch_pg_db(server_url: str, purpose: str) -> AsyncIterator[str]:
    """A new, empty database on the server of ``server_url`` (same driver), dropped after."""
    import asyncpg

    name = f"courier_bench_{purpose}_{uuid.uuid4().hex[:8]}"
    admin = admin_url(server_url)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@asynccontextmanager
async def fresh_pg_db(server_url: str, purpose: str = "app") -> AsyncIterator[str]:
    """A new, migrated database on the PostgreSQL server of ``server_url``, dropped after."""
    async with scratch_pg_db(server_url, purpose) as url:
        await asyncio.to_thread(upgrade, url)
        yield url
