from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from courier.db.engine import make_engine
from courier.db.migrate import head_revision, migrate
from courier.db.models import Base


async def _diff(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
    finally:
        await engine.dispose()


async def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def test_models_and_migrations_produce_the_same_schema(empty_db_url: str) -> None:
    assert await asyncio.to_thread(migrate, empty_db_url) == "upgrade"
    assert await _diff(empty_db_url) == []


async def test_migrations_upgrade_downgrade_and_upgrade_again(empty_db_url: str) -> None:
    await asyncio.to_thread(migrate, empty_db_url)
    tables = await _tables(empty_db_url)
    assert {"offices", "applications", "deliveries", "shipments", "audit_log"} <= tables
    assert await asyncio.to_thread(migrate, empty_db_url, head_revision()) == "current"
    assert await asyncio.to_thread(migrate, empty_db_url, "base") == "downgrade"
    assert await _tables(empty_db_url) <= {"alembic_version"}
    assert await asyncio.to_thread(migrate, empty_db_url) == "upgrade"
    assert await _diff(empty_db_url) == []
