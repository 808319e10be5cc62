"""Limits that hold under concurrency (issue 10): 100 requests at once against a real server (an
aiohttp server on loopback, both backends) get no more checks than the limit allows: the try is
counted in one statement before the check, not read and then written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import site_kit
from site_kit import Site
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from webapi import make_api

from courier.db.engine import SessionFactory
from courier.db.models import ExceptionItem, Handover
from courier.services import handover, optin

PARALLEL = 100
LIMIT = 5


async def test_100_opt_ins_at_once_get_at_most_the_limit_of_identity_checks(
    db_url: str, engine: AsyncEngine, sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = 0
    real = optin._identity_matches

    def counted(*args: Any) -> bool:
        nonlocal checks
        checks += 1
        return real(*args)

    monkeypatch.setattr(optin, "_identity_matches", counted)
    async for api in make_api(db_url, engine, sessions, optin_max_failures=LIMIT):
        assert (await api.put_application("BLT-2026-0777")).status == 201
        wrong = {"date_of_birth": "1999-09-09"}  # one address, one application, a wrong birthday
        answers = await asyncio.gather(
            *(api.opt_in("BLT-2026-0777", **wrong) for _ in range(PARALLEL))
        )
        statuses = sorted(r.status for r in answers)
        assert set(statuses) <= {422, 429}, statuses
        assert checks <= LIMIT, f"{checks} identity checks for a limit of {LIMIT}"
        assert statuses.count(422) == checks and statuses.count(429) == PARALLEL - checks
        assert all(r.headers.get("Retry-After") for r in answers if r.status == 429)
        # the right identity is still refused until the window passes: the limit is on tries
        right = await api.opt_in("BLT-2026-0777")
        assert right.status == 429


@pytest.fixture
async def site(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> AsyncIterator[Site]:
    async with site_kit.make_site(engine, sessions, tmp_path) as made:
        yield made


async def test_100_confirmations_at_once_get_at_most_the_limit_of_passport_checks(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = 0
    real = handover.passport_matches

    async def counted(*args: Any) -> bool:
        nonlocal checks
        checks += 1
        return await real(*args)

    monkeypatch.setattr(handover, "passport_matches", counted)
    blt = site.offices["BLT"]
    url = site.url(f"/api/v1/track/{blt.tracking_token}/confirm")

    async def confirm() -> int:
        async with site.kit.http.post(url, json={"passport_no": "X7654321"}) as resp:
            await resp.read()
            return resp.status

    statuses = sorted(await asyncio.gather(*(confirm() for _ in range(PARALLEL))))
    assert set(statuses) <= {422, 429}, statuses
    limit = handover.MAX_CONFIRM_FAILURES
    assert checks <= limit, f"{checks} passport checks for a limit of {limit}"
    # a wrong number is answered 422 while tries are left, 429 once they are all taken (by
    # the requests in flight too): never more than limit - 1 of the first kind
    assert statuses.count(422) <= limit - 1, statuses
    async with site.kit.sessions() as session:
        record = await session.get_one(Handover, blt.handover_id)
        locked = await session.scalar(
            select(ExceptionItem).where(ExceptionItem.kind == "handover_locked")
        )
    assert record.confirm_failures == limit and not record.verified
    assert locked is not None  # the dispatcher takes over


async def test_a_right_number_among_wrong_ones_is_not_counted(site: Site) -> None:
    """The try reserved before the check is given back when the number is right."""
    blt = site.offices["BLT"]
    url = site.url(f"/api/v1/track/{blt.tracking_token}/confirm")
    for number, expected in (("X7654321", 422), ("X1234567", 200), ("X1234567", 200)):
        async with site.kit.http.post(url, json={"passport_no": number}) as resp:
            assert resp.status == expected, await resp.text()
    async with site.kit.sessions() as session:
        record = await session.get_one(Handover, blt.handover_id)
    assert record.verified and record.confirm_failures == 1
