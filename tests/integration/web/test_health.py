"""/healthz answers while the process runs; /readyz only when the database answers and its schema
is at the migrations' head."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer
from webapi import Api, settings_for

import schemas
from core.clock import ManualClock
from courier.context import AppContext
from courier.db.engine import make_engine, make_sessions
from courier.db.migrate import downgrade, head_revision
from courier.web.app import create_app


async def test_healthz_and_readyz_on_a_migrated_database(api: Api) -> None:
    health = await api.client.get("/healthz")
    assert health.status == 200 and (await health.json()) == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status == 200
    body = await ready.json()
    assert body == {"status": "ready", "revision": head_revision()}
    assert schemas.check("api/readiness", body) == []


async def test_readyz_is_503_when_the_schema_is_behind(db_url: str) -> None:
    await asyncio.to_thread(downgrade, db_url, "base")
    engine = make_engine(db_url)
    try:
        ctx = AppContext(settings_for(db_url), engine, make_sessions(engine), ManualClock())
        async with TestClient(TestServer(create_app(ctx))) as client:
            assert (await client.get("/healthz")).status == 200
            resp = await client.get("/readyz")
            assert resp.status == 503
            body = await resp.json()
    finally:
        await engine.dispose()
    assert schemas.check("api/error", body) == []
    assert body["error"]["code"] == "not_ready"
    assert body["error"]["details"][0]["path"] == "database.revision"


async def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    # nothing listens on port 1: the connection is refused at once
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/none"
    engine = make_engine(url)
    try:
        ctx = AppContext(settings_for(url), engine, make_sessions(engine), ManualClock())
        async with TestClient(TestServer(create_app(ctx))) as client:
            resp = await client.get("/readyz")
            assert resp.status == 503
            body = await resp.json()
    finally:
        await engine.dispose()
    assert body["error"]["details"][0]["path"] == "database"
