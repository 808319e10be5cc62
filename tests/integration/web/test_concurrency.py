"""Identical requests at once, and an address change racing a booking, over real HTTP on both
backends: exactly one row, never a 500 (PostgreSQL runs them truly concurrently; SQLite
serialises writers with BEGIN IMMEDIATE)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from sqlalchemy import func, select, text
from webapi import MALANG, Api

from courier.db.engine import transaction
from courier.db.models import Application, Delivery, Shipment

N = 8


async def _count(api: Api, model: type[Application] | type[Delivery]) -> int:
    async with api.ctx.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_identical_registrations_at_once_make_one_application(api: Api) -> None:
    answers = await asyncio.gather(*(api.put_application("BLT-2026-0701") for _ in range(N)))
    statuses = Counter(r.status for r in answers)
    assert statuses == {201: 1, 200: N - 1}, [await r.text() for r in answers]
    assert await _count(api, Application) == 1


async def test_identical_opt_ins_at_once_make_one_delivery(api: Api) -> None:
    assert (await api.put_application("BLT-2026-0702")).status == 201
    assert (await api.ready("BLT-2026-0702")).status == 200
    answers = await asyncio.gather(*(api.opt_in("BLT-2026-0702") for _ in range(N)))
    statuses = Counter(r.status for r in answers)
    # the first creates; each later one re-issues the link (the same request sent again). Tries
    # are counted before the identity check (so that parallel wrong guesses cannot beat the
    # limit) and given back on success: with more identical requests in flight at one instant
    # than the limit allows, the surplus is told to wait (429), never a second delivery
    limit = api.ctx.settings.optin_max_failures
    waited = statuses.pop(429, 0)
    assert statuses == {201: 1, 200: N - 1 - waited}, [await r.text() for r in answers]
    assert waited <= max(0, N - limit)
    assert await _count(api, Delivery) == 1
    bodies = [await r.json() for r in answers if r.status != 429]
    assert sorted(b["outcome"] for b in bodies) == ["created"] + ["token_reissued"] * (
        N - 1 - waited
    )
    # every success gave its try back: the applicant is not locked out afterwards
    assert (await api.opt_in("BLT-2026-0702")).status == 200


async def _wait_for_a_lock_wait(api: Api) -> None:
    """On PostgreSQL: until some session waits for a row lock (the opt-in behind our booking)."""
    deadline = time.monotonic() + 10
    query = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
    while True:
        async with api.ctx.engine.connect() as conn:
            if (await conn.scalar(query) or 0) > 0:
                return
        assert time.monotonic() < deadline, "the opt-in never waited for the booking's lock"
        await asyncio.sleep(0.01)


async def test_an_address_change_waits_for_a_booking_and_is_refused(api: Api) -> None:
    """Booking locks the delivery, adds the shipment and commits; an address change that came
    in meanwhile must see that shipment (409), not move the parcel after it was booked."""
    assert (await api.put_application("BLT-2026-0703")).status == 201
    assert (await api.ready("BLT-2026-0703")).status == 200
    assert (await api.opt_in("BLT-2026-0703")).status == 201
    moved = {**MALANG, "street": "Jl. Ijen No. 7", "village_code": "35.73.01.1002"}
    postgres = api.ctx.engine.dialect.name == "postgresql"
    now = api.clock.now()
    async with transaction(api.ctx.sessions) as booking:
        delivery = (await booking.execute(select(Delivery).with_for_update())).scalar_one()
        change = asyncio.create_task(api.opt_in("BLT-2026-0703", address=moved))
        if postgres:  # SQLite: the change waits at BEGIN IMMEDIATE, nothing to watch for
            await _wait_for_a_lock_wait(api)
        delivery.state = "shipping"
        booking.add(
            Shipment(
                delivery_id=delivery.id,
                attempt_no=1,
                courier_code="jnt",
                client_reference="BLT-REF-0703-1",
                status="booking",
                claim_count=1,
                reconcile_count=0,
                created_at=now,
                updated_at=now,
            )
        )
    answer = await change
    assert answer.status == 409, await answer.text()
    assert (await answer.json())["error"]["code"] == "already_booked"
    async with api.ctx.sessions() as session:
        stored = (await session.execute(select(Delivery))).scalar_one()
    assert stored.address["street"] == MALANG["street"]
