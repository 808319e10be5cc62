"""The database unavailable (issue 10): every route that needs it answers 503 with Retry-After,
in the one error shape (the tracking pages: an HTML page), never a 500; the routes that do not
need it go on answering; the app recovers when the database is back.

The database is taken away without touching its server: PostgreSQL through a TCP proxy the test
controls (tests/tcp_proxy.py) which it cuts; SQLite as a file in a folder that is gone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import site_kit
from site_kit import Site
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from tcp_proxy import TcpProxy

import schemas
from courier.db.engine import SessionFactory, make_engine, make_sessions

# What answers without the database (a refused push never reaches it either).
NO_DATABASE = {
    ("GET", "/healthz"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/assets/{name}"),
    ("GET", "/static/site.css"),
    ("GET", "/static/optin.js"),
    ("GET", "/t/{rest}"),
    ("POST", "/t/{token}/confirm"),  # our sample has no valid CSRF field: refused before
    ("POST", "/t/{token}/report"),  # no valid CSRF field: refused before
    ("POST", "/t/{token}/rate"),  # no valid CSRF field: refused before
    ("GET", "/api/v1/regions"),  # the bundled dataset
    ("GET", "/api/v1/regions/{code}"),
    ("POST", "/opt-in"),  # no valid CSRF field: refused before
    ("GET", "/n/stop/{stop}"),  # the link is checked by its HMAC: the form needs no database
    ("POST", "/n/stop/{stop}"),  # no valid CSRF field: refused before
    ("GET", "/metrics"),  # answers, counting the failed database read in its own gauge
    ("GET", "/login"),  # the form: no account is read until it is posted
    ("POST", "/login"),  # our sample has no CSRF field: refused before
    ("GET", "/lang/{code}"),
    ("GET", "/static/console.css"),
}


@pytest.fixture
async def site(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> AsyncIterator[Site]:
    async with site_kit.make_site(engine, sessions, tmp_path) as made:
        yield made


async def _every_route_during_outage(site: Site) -> set[tuple[str, str]]:
    admin = site.offices["BLT"].tokens["admin"]
    unavailable = set()
    for method, template in site_kit.app_routes(site.app):
        call = site_kit.requests_for(site, method, template)
        status, headers, body = await site_kit.send(site, call, token=admin)
        assert status != 500, (method, template, body)
        if (method, template) in NO_DATABASE:
            assert status < 500, (method, template, status)
            continue
        assert status == 503, (method, template, status, body)
        assert int(headers["Retry-After"]) > 0
        unavailable.add((method, template))
        if headers.get("Content-Type", "").startswith("application/json"):
            error = json.loads(body)
            assert schemas.check("api/error", error) == []
            assert error["error"]["code"] in ("unavailable", "not_ready")
        else:
            assert headers["Content-Type"].startswith("text/html")
            assert b"coba lagi" in body
    return unavailable


async def _swap_database(site: Site, url: str) -> AsyncEngine:
    """Point the running app at ``url`` (its engine and sessions); the old engine is returned."""
    ctx = site.kit.ctx
    old = ctx.engine
    ctx.engine = make_engine(url)
    ctx.sessions = make_sessions(ctx.engine)
    return old


async def test_every_route_answers_503_while_the_database_is_away(
    site: Site, backend: str, db_url: str, tmp_path: Path
) -> None:
    if backend == "sqlite":
        await _sqlite_file_gone(site, tmp_path)
        return
    url = make_url(db_url)
    proxy = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    old = await _swap_database(site, through)
    try:
        admin = site.offices["BLT"].tokens["admin"]
        call = site_kit.Call("GET", "/api/v1/exceptions")
        assert (await site_kit.send(site, call, token=admin))[0] == 200  # through the proxy
        await proxy.cut()
        unavailable = await _every_route_during_outage(site)
        assert ("GET", "/readyz") in unavailable and ("POST", "/webhooks/{courier}") in unavailable
        await proxy.resume()
        assert (await site_kit.send(site, call, token=admin))[0] == 200  # recovered by itself
    finally:
        await site.kit.ctx.engine.dispose()
        site.kit.ctx.engine = old
        site.kit.ctx.sessions = make_sessions(old)
        await proxy.close()


async def _sqlite_file_gone(site: Site, tmp_path: Path) -> None:
    """SQLite's outage: the database file's folder is gone, so no connection opens."""
    gone = tmp_path / "no-such-folder" / "courier.sqlite3"
    old = await _swap_database(site, f"sqlite+aiosqlite:///{gone}")
    try:
        unavailable = await _every_route_during_outage(site)
        assert ("GET", "/api/v1/deliveries/{id}") in unavailable
    finally:
        await site.kit.ctx.engine.dispose()
        site.kit.ctx.engine = old
        site.kit.ctx.sessions = make_sessions(old)
