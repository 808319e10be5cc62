"""Alembic, driven from code: ``courier migrate [--revision REV]`` and the tests use this."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from courier.db.engine import make_engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logging"] = False
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Blocking: runs its own event loop, so call it from a thread inside async code."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def migrate(url: str, revision: str = "head") -> str:
    """Move to ``revision`` in either direction; returns "upgrade", "downgrade" or "current"."""
    cfg = alembic_config(url)
    script = ScriptDirectory.from_config(cfg)
    current = _applied(url)
    if revision == "base":
        if current is None:
            return "current"
        command.downgrade(cfg, "base")
        return "downgrade"
    target = script.get_revision(revision)
    if target is None:
        raise ValueError(f"unknown revision {revision!r}")
    if current == target.revision:
        return "current"
    # the target is behind us when it is among the ancestors of what is applied
    behind = current is not None and any(
        rev.revision == target.revision for rev in script.walk_revisions("base", current)
    )
    if behind:
        command.downgrade(cfg, target.revision)
        return "downgrade"
    command.upgrade(cfg, target.revision)
    return "upgrade"


def _applied(url: str) -> str | None:
    async def read() -> str | None:
        engine = make_engine(url)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    return head or "base"


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
