"""One scan, one event (issue 9, Deliver 6), on both backends: the same scan arriving by push and
by poll is stored once with both raw forms, through the real J&T simulator (its "duplicated push
and poll scans" variation) and our real webhook; the dispatch delivery view and the applicant's
tracking page list each step once; the migration merges copies stored before it."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import tracking_kit as kit_
import worker_seed as seed
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from tracking_kit import Kit, booked_shipment, event, make_kit, seed_delivery

from core.status import Status
from courier.db.engine import SessionFactory, make_engine, make_sessions, transaction
from courier.db.migrate import migrate
from courier.db.models import Shipment, TrackingEventRow
from courier.services import dispatch, tracking
from courier.services.staff import Caller
from worker import book, inbox, track


async def _rows(sessions: SessionFactory) -> list[TrackingEventRow]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(TrackingEventRow).order_by(TrackingEventRow.occurred_at, TrackingEventRow.id)
            )
        )


async def _feed(
    sessions: SessionFactory, shipment_id: int, source: str, *events: Any
) -> tracking.Applied:
    async with transaction(sessions) as session:
        shipment = await tracking.lock_shipment(session, shipment_id)
        assert shipment is not None
        return await tracking.apply_events(
            session, shipment, list(events), source=source, now=seed.T0 + timedelta(days=1)
        )


async def test_push_then_poll_copy_of_one_scan_is_one_event_with_both_raw_forms(
    sessions: SessionFactory,
) -> None:
    office_id = await seed.office(sessions)
    [delivery_id] = await seed.deliveries(sessions, office_id, 1)
    shipment_id = await booked_shipment(sessions, delivery_id)
    at = seed.T0 + timedelta(hours=3)
    pushed = event(
        Status.PICKED_UP, at, code="10", text="Pickup scan", location="BLITAR", raw={"p": 1}
    )
    polled = event(
        Status.PICKED_UP,
        at,
        code="100",
        text="Paket telah di pick up oleh Sprinter J&T",
        location=" Blitar ",
        raw={"q": 2},
    )
    first = await _feed(sessions, shipment_id, "push", pushed)
    again = await _feed(sessions, shipment_id, "push", pushed)  # a re-sent push
    second = await _feed(sessions, shipment_id, "poll", polled)
    assert (first.stored, again.duplicates, second.duplicates) == (1, 1, 1)
    [row] = await _rows(sessions)
    assert (row.source, row.raw_code, row.raw) == ("push", "10", {"p": 1})
    assert [(o["source"], o["raw_code"], o["raw"]) for o in row.other_raws] == [
        ("poll", "100", {"q": 2})
    ]
    # a different status, time or place is another scan; an unmapped code keeps its words
    await _feed(sessions, shipment_id, "poll", event(Status.IN_TRANSIT, at, location="Blitar"))
    await _feed(sessions, shipment_id, "poll", event(Status.PICKED_UP, at, location="Kediri"))
    await _feed(sessions, shipment_id, "poll", event(None, at, code="777", text="a"))
    await _feed(sessions, shipment_id, "poll", event(None, at, code="777", text="b"))
    assert len(await _rows(sessions)) == 5


async def _step_counts(kit: Kit, delivery_id: int, office_id: int) -> tuple[Counter[Any], Any]:
    caller = Caller(token_id=0, office_id=office_id, role="dispatcher", actor="staff:1")
    view = await dispatch.delivery_detail(kit.ctx, caller, delivery_id)
    steps = Counter((e.occurred_at, e.status, e.location) for e in view.events)
    moving = [e.sources for e in view.events if e.status in ("picked_up", "in_transit")]
    assert moving and all(s == ("push", "poll") for s in moving)
    async with kit.http.get(kit.url(f"/api/v1/track/{kit_.token(office_id, 1)}")) as resp:
        assert resp.status == 200
        page = await resp.json()
    return steps, page


async def test_duplicated_push_and_poll_scans_variation_stores_each_scan_once(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with make_kit(engine, sessions, tmp_path, jnt_push=True) as kit:
        kit.jnt_sim.state.variations.configure({"seed": "dup", "rates": {"duplicate_scans": 1}})
        office_id, delivery_id = await seed_delivery(kit, courier="jnt", outcome="delivered_self")
        assert await book.once(kit.ctx, "w1") == 1
        for _ in range(6):  # a day at a time: push (each batch twice, the last scan again)…
            kit.clock.advance(timedelta(days=1))
            async with kit.http.post(kit.jnt.make_url("/_sim/push"), json={}) as resp:
                assert resp.status == 200
            while await inbox.once(kit.ctx, "w1"):
                pass
            if await kit_.delivery_state(kit, delivery_id) == "delivered":
                break
            async with transaction(sessions) as session:  # …then the poll finds the same scans
                await session.execute(update(Shipment).values(next_poll_at=kit.clock.now()))
            assert await track.once(kit.ctx, "w1") == 1
        assert await kit_.delivery_state(kit, delivery_id) == "delivered"
        rows = await _rows(sessions)
        keys = Counter((r.occurred_at, r.status, r.location) for r in rows)
        assert rows and max(keys.values()) == 1
        # the scans before the delivery came by push and then by poll: one row, both raw forms
        # (J&T words them differently: push "10 Pickup scan", poll "100 Paket telah di pick up")
        on_the_way = [
            r for r in rows if r.status in ("picked_up", "in_transit", "out_for_delivery")
        ]
        assert len(on_the_way) >= 3
        for row in on_the_way:
            assert row.source == "push"
            assert [o["source"] for o in row.other_raws] == ["poll"]
            assert row.other_raws[0]["raw_code"] != row.raw_code
        steps, page = await _step_counts(kit, delivery_id, office_id)
        assert max(steps.values()) == 1 and sum(steps.values()) == len(rows)
        shown = [(str(e["at"]), e["status"], e["location"]) for e in page["events"]]
        assert len(shown) == len(rows) and len(set(shown)) == len(shown)


async def test_migration_merges_copies_stored_before_it(empty_db_url: str) -> None:
    # the records are made through today's models, then the schema goes back to 0005 (they
    # stay) and the copies are stored as 0005 stored them
    await asyncio.to_thread(migrate, empty_db_url)
    engine = make_engine(empty_db_url)
    try:
        sessions = make_sessions(engine)
        office_id = await seed.office(sessions)
        [delivery_id] = await seed.deliveries(sessions, office_id, 1)
        shipment_id = await booked_shipment(sessions, delivery_id)
    finally:
        await engine.dispose()
    assert await asyncio.to_thread(migrate, empty_db_url, "0005") == "downgrade"
    engine = make_engine(empty_db_url)
    try:
        sessions = make_sessions(engine)
        insert = text(
            "INSERT INTO tracking_events (shipment_id, source, raw_code, raw_text, status, "
            "occurred_at, received_at, location, applied, raw, dedupe_key) VALUES (:s, :src, "
            ":code, :txt, :status, :at, :at, :loc, :applied, :raw, :key)"
        )
        at = seed.T0.replace(tzinfo=None) if engine.dialect.name == "sqlite" else seed.T0
        copies = [
            ("push", "10", "Pickup scan", "picked_up", "BLITAR", True, "k1"),
            ("poll", "100", "Paket di pick up", "picked_up", "Blitar", False, "k2"),
            ("push", "10", "Pickup scan", "picked_up", "BLITAR", False, "k3"),
            ("poll", "20", "Departure scan", "in_transit", "Blitar", True, "k4"),
        ]
        async with transaction(sessions) as session:
            for src, code, txt, status, loc, applied, key in copies:
                await session.execute(
                    insert,
                    {
                        "s": shipment_id,
                        "src": src,
                        "code": code,
                        "txt": txt,
                        "status": status,
                        "at": at,
                        "loc": loc,
                        "applied": applied,
                        "raw": f'{{"code": "{code}"}}',
                        "key": key,
                    },
                )
    finally:
        await engine.dispose()
    assert await asyncio.to_thread(migrate, empty_db_url) == "upgrade"
    engine = make_engine(empty_db_url)
    try:
        rows = await _rows(make_sessions(engine))
    finally:
        await engine.dispose()
    assert [(r.source, r.status, r.applied) for r in rows] == [
        ("push", "picked_up", True),
        ("poll", "in_transit", True),
    ]
    assert [(o["source"], o["raw_code"], o["raw"]) for o in rows[0].other_raws] == [
        ("poll", "100", {"code": "100"})
    ]
    assert rows[1].other_raws == []
