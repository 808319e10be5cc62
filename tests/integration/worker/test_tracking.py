"""Tracking end to end against the courier simulators on one ManualClock (both backends):
booked → picked up → in transit → out for delivery → delivered (POD stored) → the applicant
confirms → handed over; failed attempts → returned → re-shipped → delivered; and the rules of
apply_events (dedupe, no regression, unmapped codes) on hand-made events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import tracking_kit as kit_
import worker_seed as seed
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from tracking_kit import PASSPORT_NO, booked_shipment, event, make_kit, seed_delivery, state_is

from adapters.base import Artefact, PodOrigin
from core.status import Status
from courier.db.engine import SessionFactory, transaction
from courier.db.models import (
    AuditEntry,
    CustodyEvent,
    Delivery,
    ExceptionItem,
    Handover,
    Proof,
    Shipment,
    TrackingEventRow,
)
from courier.services import handover, pod, tracking, watch
from courier.services.handover import Confirmed


async def _shipments(sessions: SessionFactory, delivery_id: int) -> list[Shipment]:
    async with sessions() as session:
        rows = await session.scalars(
            select(Shipment).where(Shipment.delivery_id == delivery_id).order_by(Shipment.id)
        )
        return list(rows)


async def _applied_statuses(sessions: SessionFactory, shipment_id: int) -> list[str]:
    async with sessions() as session:
        rows = await session.scalars(
            select(TrackingEventRow.status)
            .where(TrackingEventRow.shipment_id == shipment_id, TrackingEventRow.applied)
            .order_by(TrackingEventRow.occurred_at)
        )
        return [str(s) for s in rows]


async def _custody(sessions: SessionFactory, delivery_id: int) -> list[str]:
    async with sessions() as session:
        rows = await session.scalars(
            select(CustodyEvent.holder)
            .where(CustodyEvent.delivery_id == delivery_id)
            .order_by(CustodyEvent.id)
        )
        return list(rows)


async def test_whole_flow_to_a_verified_handover(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with make_kit(engine, sessions, tmp_path) as kit:
        office_id, delivery_id = await seed_delivery(kit, courier="jnt", outcome="delivered_self")
        await kit_.drive(kit, state_is(kit, delivery_id, "delivered"))

        [shipment] = await _shipments(sessions, delivery_id)
        assert shipment.status == "delivered" and shipment.waybill
        assert shipment.next_poll_at is None  # nothing more to ask
        applied = await _applied_statuses(sessions, shipment.id)
        assert applied == ["picked_up", "in_transit", "out_for_delivery", "delivered"]

        async with sessions() as session:
            proof = await session.scalar(select(Proof).where(Proof.shipment_id == shipment.id))
            record = await session.scalar(
                select(Handover).where(Handover.delivery_id == delivery_id)
            )
        assert proof is not None and record is not None
        assert proof.relation_kind == "self" and proof.receiver_name == "Pemohon 1"
        assert {a["kind"] for a in proof.artefacts} == {"photo", "signature"}
        for artefact in proof.artefacts:
            assert artefact["state"] == "stored" and "url" not in artefact
            path = pod.artefact_path(kit.pod_store, artefact["sha256"])
            assert kit_.sha256_file(path) == artefact["sha256"]
        assert record.state == "awaiting_confirmation"
        assert await _custody(sessions, delivery_id) == ["courier", "applicant"]

        token = kit_.token(office_id, 1)
        async with kit.http.get(kit.url("/api/v1/track/not-a-token")) as resp:
            assert resp.status == 404
        async with kit.http.get(kit.url(f"/api/v1/track/{token}")) as resp:
            assert resp.status == 200
            view = await resp.json()
        assert view["state"] == "delivered" and view["handover"]["can_confirm"] is True
        assert list(view["headline"]) == ["id", "en"]  # Bahasa Indonesia first
        assert view["events"][0]["at"]["iso"].endswith("+07:00")  # WIB
        assert [e["status"] for e in view["events"]][-1] == "delivered"

        confirm = kit.url(f"/api/v1/track/{token}/confirm")
        async with kit.http.post(confirm, json={"passport_no": "X7654321"}) as resp:
            assert resp.status == 422
            assert (await resp.json())["error"]["code"] == "confirmation_failed"
        async with kit.http.post(confirm, json={"passport_no": "1234567X"}) as resp:
            assert resp.status == 422  # schema: letters first, then seven digits
            assert (await resp.json())["error"]["details"][0]["path"] == "$.passport_no"
        async with kit.http.post(confirm, json={"passport_no": PASSPORT_NO.lower()}) as resp:
            assert resp.status == 200, await resp.text()

        assert await kit_.delivery_state(kit, delivery_id) == "handed_over"
        async with sessions() as session:
            record = await session.get(Handover, record.id)
            assert record is not None
            assert record.verified and record.state == "verified"
            assert record.confirm_failures == 1
        assert await _custody(sessions, delivery_id) == ["courier", "applicant", "applicant"]


async def test_failed_attempts_return_then_reship_delivers(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with make_kit(engine, sessions, tmp_path) as kit:
        office_id, delivery_id = await seed_delivery(kit, courier="posind", outcome="returned")
        await kit_.drive(kit, state_is(kit, delivery_id, "returned"))
        [first] = await _shipments(sessions, delivery_id)
        assert first.status == "returned"
        applied = await _applied_statuses(sessions, first.id)
        assert applied[-2:] == ["returning", "returned"]
        assert applied.count("delivery_failed") == 3  # three attempts, then back to Blitar
        # one item for the failed attempts, closed once the parcel is on its way back
        [failed] = await kit_.exceptions(kit, "delivery_failed")
        assert failed.resolved_at is not None and failed.resolution == "moved on: returning"
        [returned] = await kit_.exceptions(kit, "returned")
        assert "kirim ulang" in returned.next_step and returned.resolved_at is None
        assert "too little time" not in returned.detail

        kit.force_outcome(
            "posind", kit_.reference(kit_.office_code("posind"), 1, 2), "delivered_self"
        )
        async with transaction(sessions) as session:
            outcome = await watch.reship(
                session, delivery_id, "staff:1", now=kit.clock.now(), office_id=office_id
            )
        assert outcome == "queued"
        assert await kit_.delivery_state(kit, delivery_id) == "queued"

        await kit_.drive(kit, state_is(kit, delivery_id, "delivered"))
        first, second = await _shipments(sessions, delivery_id)
        assert (first.attempt_no, first.status) == (1, "returned")
        assert (second.attempt_no, second.status) == (2, "delivered")
        [returned] = await kit_.exceptions(kit, "returned")
        assert returned.resolved_at is not None
        assert await _custody(sessions, delivery_id) == [
            "courier",
            "office",
            "courier",
            "applicant",
        ]


async def test_unmapped_code_is_kept_changes_nothing_and_opens_one_item(
    sessions: SessionFactory,
) -> None:
    office_id = await seed.office(sessions)
    [delivery_id] = await seed.deliveries(sessions, office_id, 1)
    shipment_id = await booked_shipment(sessions, delivery_id)
    odd = event(None, seed.T0 + timedelta(hours=1), code="777", text="Puri Terima")
    for _ in range(2):  # the same event polled twice
        async with transaction(sessions) as session:
            shipment = await tracking.lock_shipment(session, shipment_id)
            assert shipment is not None
            result = await tracking.apply_events(
                session, shipment, [odd], source="poll", now=seed.T0 + timedelta(hours=2)
            )
    assert result.duplicates == 1 and result.stored == 0 and not result.changed
    async with sessions() as session:
        shipment = await session.get(Shipment, shipment_id)
        rows = list(await session.scalars(select(TrackingEventRow)))
    assert shipment is not None and shipment.status == "booked"
    assert len(rows) == 1 and rows[0].status is None and rows[0].raw_code == "777"
    assert not rows[0].applied
    async with sessions() as session:
        items = list(await session.scalars(select(kit_.ExceptionItem)))
    assert [(i.kind, i.shipment_id) for i in items] == [("unmapped_code", shipment_id)]


async def test_late_and_out_of_order_events_never_regress(sessions: SessionFactory) -> None:
    office_id = await seed.office(sessions)
    [delivery_id] = await seed.deliveries(sessions, office_id, 1)
    shipment_id = await booked_shipment(sessions, delivery_id)
    t = seed.T0

    async def feed(*events: kit_.TrackingEvent) -> tracking.Applied:
        async with transaction(sessions) as session:
            shipment = await tracking.lock_shipment(session, shipment_id)
            assert shipment is not None
            return await tracking.apply_events(
                session, shipment, list(events), source="push", now=t + timedelta(days=3)
            )

    # second attempt's out-for-delivery arrives before the first attempt's failure
    await feed(event(Status.OUT_FOR_DELIVERY, t + timedelta(hours=30)))
    await feed(event(Status.OUT_FOR_DELIVERY, t + timedelta(hours=50), text="again"))
    late = await feed(event(Status.DELIVERY_FAILED, t + timedelta(hours=33)))
    assert late.after is Status.OUT_FOR_DELIVERY and late.stored == 1
    # delivered, then a late in-transit scan and a duplicate of the delivery
    delivered = event(
        Status.DELIVERED, t + timedelta(hours=52), receiver_name="Pemohon 1", relation="YBS"
    )
    await feed(delivered)
    after = await feed(event(Status.IN_TRANSIT, t + timedelta(hours=20)), delivered)
    assert after.after is Status.DELIVERED and after.duplicates == 1 and after.stored == 1
    async with sessions() as session:
        shipment = await session.get(Shipment, shipment_id)
        rows = list(
            await session.scalars(select(TrackingEventRow).order_by(TrackingEventRow.occurred_at))
        )
        moves = list(
            await session.scalars(
                select(AuditEntry.after).where(AuditEntry.action == "shipment.status")
            )
        )
    assert shipment is not None and shipment.status == "delivered"
    assert [r.status for r in rows] == [
        "in_transit",
        "out_for_delivery",
        "delivery_failed",
        "out_for_delivery",
        "delivered",
    ]
    assert [r.applied for r in rows] == [False, True, False, False, True]
    assert [m["status"] for m in moves] == ["out_for_delivery", "delivered"]


async def _deliver(sessions: SessionFactory, relation: str, receiver: str) -> tuple[int, int, int]:
    """A delivered shipment (receiver and relation as given); (delivery, handover, reviewer)."""
    office_id = await seed.office(sessions)
    reviewer = await kit_.staff(sessions, office_id)
    [delivery_id] = await seed.deliveries(sessions, office_id, 1)
    shipment_id = await booked_shipment(sessions, delivery_id)
    async with transaction(sessions) as session:
        shipment = await tracking.lock_shipment(session, shipment_id)
        assert shipment is not None
        await tracking.apply_events(
            session,
            shipment,
            [
                event(Status.PICKED_UP, seed.T0 + timedelta(hours=3)),
                event(
                    Status.DELIVERED,
                    seed.T0 + timedelta(hours=30),
                    receiver_name=receiver,
                    relation=relation,
                    artefacts=(Artefact("photo", "http://127.0.0.1:9/x"),),
                ),
            ],
            source="poll",
            now=seed.T0 + timedelta(hours=31),
        )
    async with sessions() as session:
        record = await session.scalar(select(Handover).where(Handover.delivery_id == delivery_id))
    assert record is not None
    return delivery_id, record.id, reviewer


async def test_family_receiver_needs_review_and_a_dispatcher_approves(
    sessions: SessionFactory,
) -> None:
    delivery_id, handover_id, reviewer = await _deliver(sessions, "ISTRI", "Siti Rahayu")
    async with sessions() as session:
        record = await session.get(Handover, handover_id)
        delivery = await session.get(Delivery, delivery_id)
    assert record is not None and delivery is not None
    # waiting for a dispatcher: visibly in needs-attention (invariant 3)
    assert record.state == "needs_review" and delivery.state == "needs_attention"
    assert await _custody(sessions, delivery_id) == ["courier", "family"]
    [item] = [i for i in await _items(sessions) if i.kind == "handover_review"]
    assert "KK" in item.next_step
    token_hash = delivery.tracking_token_hash  # the applicant cannot confirm a review case
    try:
        await handover.confirm_possession(
            sessions, token_hash, PASSPORT_NO, seed.T0, pepper=kit_.PEPPER
        )
    except handover.ServiceError as err:
        assert err.code == "nothing_to_confirm"
    else:
        raise AssertionError("confirmation accepted for a handover under review")
    async with transaction(sessions) as session:
        await handover.review(
            session,
            handover_id,
            reviewer,
            True,
            "KK checked",
            now=seed.T0 + timedelta(days=2),
            office_id=delivery.office_id,
        )
    async with sessions() as session:
        record = await session.get(Handover, handover_id)
        delivery = await session.get(Delivery, delivery_id)
    assert record is not None and record.verified and record.reviewer_id == reviewer
    assert delivery is not None and delivery.state == "handed_over"
    assert all(
        i.resolved_at is not None for i in await _items(sessions) if i.kind == "handover_review"
    )


async def test_someone_else_is_an_exception_and_refusal_needs_attention(
    sessions: SessionFactory,
) -> None:
    delivery_id, handover_id, reviewer = await _deliver(sessions, "SATPAM", "Joko")
    assert [i.kind for i in await _items(sessions)] == ["handover_exception"]
    async with sessions() as session:
        delivery = await session.get(Delivery, delivery_id)
    assert delivery is not None and delivery.state == "needs_attention"
    async with transaction(sessions) as session:
        await handover.review(
            session,
            handover_id,
            reviewer,
            False,
            "guard is not family",
            now=seed.T0 + timedelta(days=2),
            office_id=delivery.office_id,
        )
    async with sessions() as session:
        record = await session.get(Handover, handover_id)
    assert record is not None and record.state == "refused" and not record.verified
    kinds = {i.kind: i.resolved_at for i in await _items(sessions)}
    assert kinds["handover_exception"] is not None and kinds["handover_refused"] is None


async def test_confirmation_locks_after_repeated_wrong_numbers(sessions: SessionFactory) -> None:
    delivery_id, handover_id, _ = await _deliver(sessions, "YBS", "Pemohon 1")
    async with transaction(sessions) as session:
        delivery = await session.get(Delivery, delivery_id)
        assert delivery is not None
        from courier.db.models import Application

        app = await session.get(Application, delivery.application_id)
        assert app is not None
        app.passport_no_hash = kit_.hash_passport_no(kit_.PEPPER, PASSPORT_NO)
        token_hash = delivery.tracking_token_hash
    outcomes = []
    for number in ["X0000001"] * handover.MAX_CONFIRM_FAILURES + [PASSPORT_NO]:
        result = await handover.confirm_possession(
            sessions, token_hash, number, seed.T0, pepper=kit_.PEPPER
        )
        outcomes.append(result.outcome)
    assert outcomes == [Confirmed.WRONG] * 4 + [Confirmed.LOCKED, Confirmed.LOCKED]
    assert "handover_locked" in [i.kind for i in await _items(sessions)]
    async with sessions() as session:
        record = await session.get(Handover, handover_id)
    assert record is not None and not record.verified and record.confirm_failures == 5


async def _items(sessions: SessionFactory) -> list[kit_.ExceptionItem]:
    async with sessions() as session:
        return list(
            await session.scalars(select(kit_.ExceptionItem).order_by(kit_.ExceptionItem.id))
        )


# --------------------------------------------------------------------------------------------
# Proof-of-delivery artefacts: per-link backoff, bounded by the link's life; allowed hosts only


@dataclass
class _Links:
    """A courier's artefact host on loopback: answers ``status`` (200 serves a PNG), counts hits."""

    status: int = 503
    hits: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        if self.status == 200:
            body = b"\x89PNG\r\n\x1a\n" + request.path.encode()
            return web.Response(body=body, content_type="image/png")
        return web.Response(status=self.status)


async def _delivered_with(sessions: SessionFactory, *urls: str) -> tuple[int, int]:
    """A J&T shipment delivered at T0+30h whose proof links to ``urls``; (office, proof id)."""
    office_id = await seed.office(sessions)
    [delivery_id] = await seed.deliveries(sessions, office_id, 1)
    shipment_id = await booked_shipment(sessions, delivery_id)
    artefacts = tuple(Artefact(f"photo{i}", url) for i, url in enumerate(urls))
    async with transaction(sessions) as session:
        shipment = await tracking.lock_shipment(session, shipment_id)
        assert shipment is not None
        applied = await tracking.apply_events(
            session,
            shipment,
            [
                event(
                    Status.DELIVERED,
                    seed.T0 + timedelta(hours=30),
                    receiver_name="Pemohon 1",
                    relation="YBS",
                    artefacts=artefacts,
                ),
            ],
            source="poll",
            now=seed.T0 + timedelta(hours=30),
        )
    assert applied.proof_id is not None
    return office_id, applied.proof_id


async def _artefacts(sessions: SessionFactory, proof_id: int) -> list[dict[str, Any]]:
    async with sessions() as session:
        proof = await session.get(Proof, proof_id)
        assert proof is not None
        return list(proof.artefacts)


async def test_failing_pod_link_waits_longer_each_time_then_is_reported_before_it_expires(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    links = _Links(status=503)
    app = web.Application()
    app.router.add_get("/pod/{name}", links.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        recorded = seed.T0 + timedelta(hours=30)
        expires = int((recorded + timedelta(hours=3)).timestamp())  # the link lives three hours
        url = str(server.make_url(f"/pod/a.png?expires={expires}&signature=s"))
        office_id, proof_id = await _delivered_with(sessions, url)
        origins = {"jnt": {PodOrigin("http", "127.0.0.1", server.port, allow_private=True)}}

        async def fetch(now: datetime) -> int:
            return await pod.fetch_pending(sessions, tmp_path, now=now, origins=origins)

        for _ in range(5):  # every track cycle of the same minute: one request, not five
            assert await fetch(recorded) == 0
        assert len(links.hits) == 1
        [artefact] = await _artefacts(sessions, proof_id)
        assert artefact["state"] == "pending" and artefact["attempts"] == 1

        now, waits = recorded, []
        while artefact["state"] == "pending":
            due = datetime.fromisoformat(artefact["next_try_at"])
            assert await fetch(due - timedelta(seconds=1)) == 0  # not before its time
            waits.append(due - now)
            now = due
            await fetch(now)
            [artefact] = await _artefacts(sessions, proof_id)
        assert waits == sorted(waits) and waits[0] >= timedelta(minutes=1)
        assert waits[-1] >= 2 * waits[0]  # exponential, not a fixed step
        assert now < datetime.fromtimestamp(expires, UTC)  # given up while the link still lived
        assert artefact["state"] == "failed" and "url" not in artefact
        assert len(links.hits) == artefact["attempts"] == len(waits) + 1 < pod.MAX_FETCH_ATTEMPTS
        async with sessions() as session:
            [item] = list(
                await session.scalars(
                    select(ExceptionItem).where(ExceptionItem.kind == "pod_missing")
                )
            )
        assert item.office_id == office_id and "HTTP 503" in item.detail
        hits = len(links.hits)
        await fetch(now + timedelta(days=1))
        assert len(links.hits) == hits  # given up for good: no more requests


async def test_pod_link_that_recovers_is_stored_on_a_later_try(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    links = _Links(status=503)
    app = web.Application()
    app.router.add_get("/pod/{name}", links.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        _, proof_id = await _delivered_with(sessions, str(server.make_url("/pod/b.png")))
        now = seed.T0 + timedelta(hours=30)
        origins = {"jnt": {PodOrigin("http", "127.0.0.1", server.port, allow_private=True)}}
        assert await pod.fetch_pending(sessions, tmp_path, now=now, origins=origins) == 0
        links.status = 200
        [artefact] = await _artefacts(sessions, proof_id)
        due = datetime.fromisoformat(artefact["next_try_at"])
        assert await pod.fetch_pending(sessions, tmp_path, now=due, origins=origins) == 1
        [artefact] = await _artefacts(sessions, proof_id)
        assert artefact["state"] == "stored" and artefact["attempts"] == 2
        assert (
            kit_.sha256_file(pod.artefact_path(tmp_path, artefact["sha256"]))
            == (artefact["sha256"])
        )


async def test_pod_links_outside_the_couriers_origins_are_refused_without_a_request(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    links = _Links(status=200)
    app = web.Application()
    app.router.add_get("/pod/{name}", links.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        port = server.port
        urls = (
            f"http://127.0.0.1:{port}/pod/ok.png",  # the allowed origin: fetched
            f"http://localhost:{port}/pod/internal.png",  # same machine, another name: refused
            f"http://user@127.0.0.1:{port}/pod/creds.png",  # credentials in the link: refused
            "file:///etc/passwd",  # not http(s): refused
        )
        office_id, proof_id = await _delivered_with(sessions, *urls)
        origin = {"origin": f"http://127.0.0.1:{port}", "allow_private": True}
        origins = pod.allowed_origins(
            {"jnt": {"track_url": f"http://127.0.0.1:{port}/track", "pod_origins": [origin]}}
        )
        now = seed.T0 + timedelta(hours=30)
        assert await pod.fetch_pending(sessions, tmp_path, now=now, origins=origins) == 1
        assert links.hits == ["/pod/ok.png"]
        states = [a["state"] for a in await _artefacts(sessions, proof_id)]
        assert states == ["stored", "failed", "failed", "failed"]
        async with sessions() as session:
            [item] = list(
                await session.scalars(
                    select(ExceptionItem).where(ExceptionItem.kind == "pod_missing")
                )
            )
        assert item.office_id == office_id and item.detail.count("link refused") == 3
