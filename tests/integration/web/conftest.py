"""Fixtures for the HTTP tests: ``api`` is a real server over a fresh database (both backends)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from webapi import Api, make_api

from courier.db.engine import SessionFactory


@pytest.fixture
async def api(db_url: str, engine: AsyncEngine, sessions: SessionFactory) -> AsyncIterator[Api]:
    async for value in make_api(db_url, engine, sessions):
        yield value
