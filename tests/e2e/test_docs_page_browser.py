"""The API docs page in a real browser: the vendored Swagger UI renders the OpenAPI document
with every route, and nothing is fetched from anywhere but this server (no CDN)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import ManualClock
from courier import config
from courier.context import AppContext
from courier.db.engine import SessionFactory
from courier.web.app import create_app
from courier.web.openapi import build_document

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])  # the page needs no database


async def test_docs_page_renders_every_route_from_this_server_only(
    backend: str, db_url: str, engine: AsyncEngine, sessions: SessionFactory, browser: Browser
) -> None:
    settings = config.from_mapping({"database_url": db_url})
    server = TestServer(
        create_app(AppContext(settings, engine, sessions, ManualClock())), host="127.0.0.1"
    )
    await server.start_server()
    try:
        page = await browser.new_page()
        hosts: set[str] = set()

        def seen(request: Request) -> None:
            hosts.add(urlsplit(request.url).hostname or request.url)

        page.on("request", seen)
        response = await page.goto(str(server.make_url("/docs")))
        assert response is not None and response.status == 200
        title = page.locator(".swagger-ui .info .title")
        await title.wait_for(timeout=15_000)
        assert "passport-courier" in await title.inner_text()
        # Swagger UI breaks long paths with zero-width spaces
        shown = (await page.inner_text("body")).replace("\u200b", "")
        for path in build_document()["paths"]:
            assert path in shown, f"{path} is not on the docs page"
        assert hosts == {"127.0.0.1"}, f"fetched from elsewhere: {sorted(hosts)}"
    finally:
        await server.close()
