"""The applicant's confirmation checks the passport number (argon2, ~0.1 s) with no transaction
open, so writers elsewhere are not held up; the outcome is committed only if the same handover
still awaits the applicant. Over real HTTP against the J&T simulator, both backends."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import tracking_kit as kit_
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from courier.db.engine import SessionFactory, is_sqlite, transaction
from courier.db.models import Delivery, Handover
from courier.services import handover


async def _write_without_waiting(db_url: str, delivery_id: int) -> bool:
    """Can another writer update the delivery right now? (It gives up after 0.2 s.)"""
    if is_sqlite(db_url):
        engine = create_async_engine(db_url, connect_args={"timeout": 0.2})
    else:
        engine = create_async_engine(
            db_url, connect_args={"server_settings": {"lock_timeout": "200"}}
        )
    try:
        async with engine.begin() as conn:
            await conn.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(updated_at=Delivery.updated_at)
            )
        return True
    except DBAPIError:  # database is locked / lock timeout
        return False
    finally:
        await engine.dispose()


@asynccontextmanager
async def _delivered(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> AsyncIterator[tuple[kit_.Kit, int, int]]:
    """A kit whose one delivery is delivered to the applicant; (kit, office id, delivery id)."""
    async with kit_.make_kit(engine, sessions, tmp_path) as kit:
        office_id, delivery_id = await kit_.seed_delivery(kit, outcome="delivered_self")
        await kit_.drive(kit, kit_.state_is(kit, delivery_id, "delivered"))
        yield kit, office_id, delivery_id


def _gate_passport_check(monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold the (real) passport check until released; returns (entered, release)."""
    entered, release = asyncio.Event(), asyncio.Event()
    real: Callable[..., Any] = handover.passport_matches

    async def gated(*args: Any) -> bool:
        entered.set()
        await release.wait()
        return bool(await real(*args))

    monkeypatch.setattr(handover, "passport_matches", gated)
    return entered, release


async def test_other_writers_go_on_while_the_number_is_checked(
    db_url: str,
    engine: AsyncEngine,
    sessions: SessionFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with _delivered(engine, sessions, tmp_path) as (kit, office_id, delivery_id):
        entered, release = _gate_passport_check(monkeypatch)
        url = kit.url(f"/api/v1/track/{kit_.token(office_id, 1)}/confirm")
        confirm = asyncio.create_task(kit.http.post(url, json={"passport_no": kit_.PASSPORT_NO}))
        await asyncio.wait_for(entered.wait(), 10)
        assert await _write_without_waiting(db_url, delivery_id)  # no lock held meanwhile
        release.set()
        async with await confirm as resp:
            assert resp.status == 200, await resp.text()
        assert await kit_.delivery_state(kit, delivery_id) == "handed_over"


async def test_a_handover_refused_during_the_check_is_not_verified_after_it(
    engine: AsyncEngine,
    sessions: SessionFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with _delivered(engine, sessions, tmp_path) as (kit, office_id, delivery_id):
        reviewer = await kit_.staff(sessions, office_id)
        entered, release = _gate_passport_check(monkeypatch)
        url = kit.url(f"/api/v1/track/{kit_.token(office_id, 1)}/confirm")
        confirm = asyncio.create_task(kit.http.post(url, json={"passport_no": kit_.PASSPORT_NO}))
        await asyncio.wait_for(entered.wait(), 10)
        async with sessions() as session:
            [record] = (
                await session.execute(
                    Handover.__table__.select().where(Handover.delivery_id == delivery_id)
                )
            ).all()
        async with transaction(sessions) as session:  # not held up by the confirmation
            await handover.review(
                session,
                record.id,
                reviewer,
                False,
                "the applicant reports it missing",
                now=kit.clock.now(),
                office_id=office_id,
            )
        release.set()
        async with await confirm as resp:
            assert resp.status == 409, await resp.text()
            assert (await resp.json())["error"]["code"] == "nothing_to_confirm"
        assert await kit_.delivery_state(kit, delivery_id) == "needs_attention"
        async with sessions() as session:
            stored = await session.get_one(Handover, record.id)
        assert stored.state == handover.REFUSED and not stored.verified


async def test_a_second_office_cannot_review_the_handover(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    """Invariant 5: the reviewer's office is required and must be the delivery's."""
    office_param = inspect.signature(handover.review).parameters["office_id"]
    assert office_param.default is inspect.Parameter.empty  # no call may leave it out
    async with _delivered(engine, sessions, tmp_path) as (kit, office_id, delivery_id):
        reviewer = await kit_.staff(sessions, office_id)
        async with sessions() as session:
            [record] = (
                await session.execute(
                    Handover.__table__.select().where(Handover.delivery_id == delivery_id)
                )
            ).all()
        with pytest.raises(handover.ServiceError) as refused:
            async with transaction(sessions) as session:
                await handover.review(
                    session,
                    record.id,
                    reviewer,
                    True,
                    "looks fine",
                    now=kit.clock.now(),
                    office_id=office_id + 1000,
                )
        assert refused.value.code == "unknown_handover"
        assert await kit_.delivery_state(kit, delivery_id) == "delivered"
