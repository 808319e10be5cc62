"""Staff security (issue 10): API tokens expire (per token, or the configured default; tokens
made before expiry existed count from their creation), and `courier user disable` /
`courier token revoke` refuse the very next request of a server that stays up; on both backends.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from core.clock import ManualClock
from courier import config
from courier.cli import main
from courier.context import AppContext
from courier.db.engine import SessionFactory, transaction
from courier.db.models import ApiToken, AuditEntry, StaffUser
from courier.web.app import create_app

CONFIG = """
database_url = "{url}"
[log]
level = "warning"
[security]
token_lifetime_days = 7

[[offices]]
code = "BLT"
name = "Kantor Imigrasi Blitar"
home_regency_codes = ["35.72"]
[offices.sender]
contact = "Seksi Dokumen Perjalanan"
phone = "0342-801344"
street = "Jl. Sudanco Supriyadi No. 40"
regency_code = "35.72"
district_code = "35.72.03"
postal_code = "66133"
"""
ROUTE = "/api/v1/exceptions"  # a dispatcher's read: no side effects


@pytest.fixture
def cfg(db_url: str, tmp_path: Path) -> str:
    path = tmp_path / "courier.toml"
    path.write_text(CONFIG.format(url=db_url))
    assert main(["--config", str(path), "office", "sync"]) == 0
    return str(path)


async def cli(*args: str) -> int:
    """The command line, run as an operator would while the server keeps serving."""
    return await asyncio.to_thread(main, list(args))


@pytest.fixture
async def server(
    db_url: str, engine: object, sessions: SessionFactory, cfg: str
) -> AsyncIterator[tuple[TestClient, ManualClock]]:
    clock = ManualClock(datetime.now(UTC))
    settings = config.from_mapping({"database_url": db_url, "security": {"token_lifetime_days": 7}})
    ctx = AppContext(settings, engine, sessions, clock)  # type: ignore[arg-type]
    async with TestClient(TestServer(create_app(ctx))) as client:
        yield client, clock


async def _token(capsys: pytest.CaptureFixture[str], cfg: str, *extra: str) -> str:
    capsys.readouterr()
    add = ["--config", cfg, "token", "add", "--office", "BLT", "--role", "dispatcher"]
    assert await cli(*add, "--name", "dispatch desk", *extra) == 0
    return capsys.readouterr().out.strip()


async def _status(client: TestClient, token: str) -> int:
    resp = await client.get(ROUTE, headers={"Authorization": f"Bearer {token}"})
    return resp.status


async def _row(sessions: SessionFactory, token: str) -> ApiToken:
    async with sessions() as session:
        row = await session.scalar(select(ApiToken).where(ApiToken.prefix == token[:12]))
    assert row is not None
    return row


async def test_a_token_stops_working_when_its_own_lifetime_ends(
    server: tuple[TestClient, ManualClock],
    sessions: SessionFactory,
    cfg: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, clock = server
    token = await _token(capsys, cfg, "--expires-in", "2h")
    row = await _row(sessions, token)
    assert row.expires_at == row.created_at + timedelta(hours=2)
    clock.set(row.expires_at - timedelta(seconds=1))
    assert await _status(client, token) == 200
    clock.set(row.expires_at)
    assert await _status(client, token) == 401


async def test_without_expires_in_the_configured_default_lifetime_applies(
    server: tuple[TestClient, ManualClock],
    sessions: SessionFactory,
    cfg: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, clock = server
    token = await _token(capsys, cfg)
    row = await _row(sessions, token)
    assert row.expires_at == row.created_at + timedelta(days=7)  # security.token_lifetime_days
    assert await cli("--config", cfg, "token", "list") == 0
    assert f"active, expires {row.expires_at:%Y-%m-%d}" in capsys.readouterr().out
    # a token made before expiry existed (no expires_at) counts from its creation
    async with transaction(sessions) as session:
        await session.execute(update(ApiToken).values(expires_at=None))
    clock.set(row.created_at + timedelta(days=7) - timedelta(minutes=1))
    assert await _status(client, token) == 200
    clock.set(row.created_at + timedelta(days=7))
    assert await _status(client, token) == 401


async def test_bad_lifetimes_are_refused_naming_the_option(
    cfg: str, db_url: str, sessions: SessionFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    add = ["--config", cfg, "token", "add", "--office", "BLT", "--role", "intake", "--name", "x"]
    for bad in ("30", "soon", "-1d", "0d", "1.5d"):
        with pytest.raises(SystemExit) as exited:
            await cli(*add, "--expires-in", bad)
        if exited.value.code == 2 and "--expires-in" in capsys.readouterr().err:
            continue
        raise AssertionError(bad)
    async with sessions() as session:
        assert list(await session.scalars(select(ApiToken))) == []


async def test_lifetime_beyond_ten_years_is_a_field_error(
    cfg: str, sessions: SessionFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    add = ["--config", cfg, "token", "add", "--office", "BLT", "--role", "intake", "--name", "x"]
    for too_long in ("3651d", "99999w"):
        assert await cli(*add, "--expires-in", too_long) == 1
        assert "$.expires_in" in capsys.readouterr().err
    async with sessions() as session:
        assert list(await session.scalars(select(ApiToken))) == []


async def test_revoke_and_disable_refuse_the_next_request_of_a_running_server(
    server: tuple[TestClient, ManualClock],
    sessions: SessionFactory,
    cfg: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, _ = server
    monkeypatch.setattr("sys.stdin", io.StringIO("kuda-lumping-2026\n"))
    user_add = ["user", "add", "--office", "BLT", "--username", "dewi.k", "--role", "dispatcher"]
    assert await cli("--config", cfg, *user_add, "--password-stdin") == 0
    personal = await _token(capsys, cfg, "--user", "dewi.k")
    desk = await _token(capsys, cfg)
    assert await _status(client, personal) == 200 and await _status(client, desk) == 200

    assert await cli("--config", cfg, "user", "disable", "dewi.k") == 0
    assert "user dewi.k disabled" in capsys.readouterr().out
    assert await _status(client, personal) == 401
    assert await _status(client, desk) == 200  # tied to no one: unaffected
    async with sessions() as session:
        user = await session.scalar(select(StaffUser))
        assert user is not None and user.active is False
    assert await cli("--config", cfg, "user", "disable", "nobody") == 1
    assert await cli("--config", cfg, "user", "enable", "dewi.k") == 0
    assert await _status(client, personal) == 200

    assert await cli("--config", cfg, "token", "revoke", desk[:12]) == 0
    assert await _status(client, desk) == 401
    async with sessions() as session:
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert actions.count("staff_user.disabled") == 1 and actions.count("staff_user.enabled") == 1
    assert actions.count("api_token.revoked") == 1
