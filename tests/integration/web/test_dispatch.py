"""The dispatcher's staff API over real HTTP, both backends: the exceptions queue, one delivery,
reviewing a family handover, re-shipping a returned passport (a later booking is attempt 2),
collecting a too-late return at the counter; other offices get 404, other roles 403, bad input
field errors that change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import tracking_kit as kit_
import worker_seed as seed
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from tracking_kit import booked_shipment, event

from core.status import Status
from courier.db.engine import SessionFactory, transaction
from courier.db.models import (
    Application,
    AuditEntry,
    CustodyEvent,
    Delivery,
    ExceptionItem,
    Handover,
    Shipment,
)
from courier.services import staff, tracking
from worker import book

FAMILY_RECEIVER = "Siti Rahayu"
KTP = {
    "id_type": "ktp",
    "id_number": "3505123456780001",
}  # the identity document the counter checks
PASSPORT_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"


@dataclass
class Desk:
    """A kit with two offices: BLT (``token``: a dispatcher's) and KDR (``other``: a dispatcher
    of another office); ``intake`` and ``unsigned`` (a dispatcher token nobody holds) are BLT's."""

    kit: kit_.Kit
    office_id: int
    token: str
    user_id: int
    other: str
    intake: str
    unsigned: str

    def url(self, path: str) -> str:
        return self.kit.url(path)

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        data: bytes | None = None,
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.kit.http.request(
            method, self.url(path), json=json, data=data, headers=headers
        ) as resp:
            return resp.status, await resp.json()

    async def audit_count(self) -> int:
        async with self.kit.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(AuditEntry)) or 0)

    async def state(self, delivery_id: int) -> str:
        return await kit_.delivery_state(self.kit, delivery_id)


async def _token(sessions: SessionFactory, code: str, role: str, user_id: int | None = None) -> str:
    async with transaction(sessions) as session:
        _, plaintext = await staff.create_token(
            session,
            office_code=code,
            role=role,
            name=f"{role} {code}",
            now=seed.T0,
            actor="test",
            staff_user_id=user_id,
        )
    return plaintext


@pytest.fixture
async def desk(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> AsyncIterator[Desk]:
    async with kit_.make_kit(engine, sessions, tmp_path) as kit:
        office_id = await seed.office(sessions, code="BLT")
        other_id = await seed.office(sessions, code="KDR")
        user_id = await kit_.staff(sessions, office_id, "dina")
        other_user = await kit_.staff(sessions, other_id, "eko")
        yield Desk(
            kit,
            office_id,
            await _token(sessions, "BLT", "dispatcher", user_id),
            user_id,
            await _token(sessions, "KDR", "dispatcher", other_user),
            await _token(sessions, "BLT", "intake"),
            await _token(sessions, "BLT", "dispatcher"),
        )


async def _feed(sessions: SessionFactory, shipment_id: int, *events: Any) -> None:
    async with transaction(sessions) as session:
        shipment = await tracking.lock_shipment(session, shipment_id)
        assert shipment is not None
        await tracking.apply_events(
            session,
            shipment,
            list(events),
            source="poll",
            now=max(e.occurred_at for e in events) + timedelta(minutes=5),
        )


async def family_delivered(desk: Desk, i: int) -> tuple[int, int]:
    """Application ``i`` delivered to the applicant's wife: (delivery id, handover id)."""
    sessions = desk.kit.sessions
    [delivery_id] = await seed.deliveries(sessions, desk.office_id, 1, start=i)
    async with transaction(sessions) as session:  # as intake leaves it once the passport is ready
        delivery = await session.get_one(Delivery, delivery_id)
        await session.execute(
            update(Application)
            .where(Application.id == delivery.application_id)
            .values(passport_no_hash=PASSPORT_HASH)
        )
    waybill = f"JO{i:010d}"
    shipment_id = await booked_shipment(sessions, delivery_id, waybill=waybill)
    t = seed.T0
    await _feed(
        sessions,
        shipment_id,
        event(Status.PICKED_UP, t + timedelta(hours=3), waybill=waybill),
        event(
            Status.DELIVERED,
            t + timedelta(hours=30),
            waybill=waybill,
            receiver_name=FAMILY_RECEIVER,
            relation="ISTRI",
        ),
    )
    async with sessions() as session:
        record = await session.scalar(select(Handover).where(Handover.delivery_id == delivery_id))
    assert record is not None and record.state == "needs_review"
    return delivery_id, record.id


async def returned(desk: Desk, i: int, *, collect_in_days: int = 30) -> int:
    """Application ``i`` back at the office after a failed attempt: its delivery id."""
    sessions = desk.kit.sessions
    [delivery_id] = await seed.deliveries(
        sessions, desk.office_id, 1, start=i, collect_in_days=collect_in_days
    )
    waybill = f"JO{i:010d}"
    shipment_id = await booked_shipment(sessions, delivery_id, waybill=waybill)
    t = seed.T0
    await _feed(
        sessions,
        shipment_id,
        event(Status.PICKED_UP, t + timedelta(hours=3), waybill=waybill),
        event(Status.OUT_FOR_DELIVERY, t + timedelta(hours=20), waybill=waybill),
        event(
            Status.DELIVERY_FAILED,
            t + timedelta(hours=22),
            waybill=waybill,
            code="CODE-77",
            text="RUMAH KOSONG",
            location="MALANG",
        ),
        event(Status.RETURNING, t + timedelta(hours=30), waybill=waybill),
        event(Status.RETURNED, t + timedelta(hours=40), waybill=waybill),
    )
    assert await desk.state(delivery_id) == "returned"
    return delivery_id


async def _custody(sessions: SessionFactory, delivery_id: int) -> list[tuple[str, str]]:
    async with sessions() as session:
        rows = await session.execute(
            select(CustodyEvent.holder, CustodyEvent.holder_ref)
            .where(CustodyEvent.delivery_id == delivery_id)
            .order_by(CustodyEvent.id)
        )
        return [(str(h), str(r)) for h, r in rows]


async def test_the_queue_lists_the_offices_items_newest_first_without_personal_data(
    desk: Desk,
) -> None:
    family_id, _ = await family_delivered(desk, 1)
    returned_id = await returned(desk, 2)
    status, page = await desk.call("GET", "/api/v1/exceptions")
    assert status == 200, page
    items = page["items"]
    assert [i["kind"] for i in items] == ["returned", "handover_review"]  # delivery_failed closed
    assert [i["id"] for i in items] == sorted((i["id"] for i in items), reverse=True)
    assert page["next_cursor"] is None
    back = items[0]
    assert back["delivery_id"] == returned_id and back["delivery_state"] == "returned"
    assert back["application_no"] == "202600000002" and back["shipment_id"] is not None
    assert "kirim ulang" in back["next_step"] and "re-ship" in back["next_step_en"]
    assert back["resolved_at"] is None
    assert back["opened_at"].endswith("+00:00")
    assert items[1]["delivery_id"] == family_id
    text = repr(page)
    async with desk.kit.sessions() as session:
        apps = list(await session.scalars(select(Application)))
    for app in apps:  # shown on shared screens: no names, phones or addresses
        assert app.applicant_name not in text and app.phone not in text
    assert FAMILY_RECEIVER not in text and "Jl. Ijen" not in text

    # keyset pagination: one at a time, then nothing more
    status, first = await desk.call("GET", "/api/v1/exceptions?limit=1")
    assert status == 200 and [i["id"] for i in first["items"]] == [items[0]["id"]]
    assert first["next_cursor"] == items[0]["id"]
    status, second = await desk.call(
        "GET", f"/api/v1/exceptions?limit=1&cursor={first['next_cursor']}"
    )
    assert [i["id"] for i in second["items"]] == [items[1]["id"]]
    assert second["next_cursor"] is None

    status, kinds = await desk.call("GET", "/api/v1/exceptions?kind=handover_review")
    assert [i["delivery_id"] for i in kinds["items"]] == [family_id]
    status, closed = await desk.call("GET", "/api/v1/exceptions?open=false")
    assert [i["kind"] for i in closed["items"]] == ["delivery_failed"]
    assert closed["items"][0]["resolved_at"] is not None

    # another office's queue does not show these
    status, theirs = await desk.call("GET", "/api/v1/exceptions", token=desk.other)
    assert status == 200 and theirs == {"items": [], "next_cursor": None}


async def test_a_delivery_shows_what_a_dispatcher_needs_and_no_hashes(desk: Desk) -> None:
    delivery_id, handover_id = await family_delivered(desk, 1)
    status, view = await desk.call("GET", f"/api/v1/deliveries/{delivery_id}")
    assert status == 200, view
    assert view["id"] == delivery_id and view["application_no"] == "202600000001"
    assert view["state"] == "needs_attention" and view["reason"]
    assert view["applicant"] == {"name": "Pemohon 1", "phone": "+6281234000001"}
    assert view["destination"] == {
        "regency_code": "35.73",
        "regency_name": "KOTA MALANG",
        "province_name": "JAWA TIMUR",
    }
    [shipment] = view["shipments"]
    assert shipment["attempt"] == 1 and shipment["waybill"] == "JO0000000001"
    assert shipment["status"] == "delivered" and shipment["courier"] == "jnt"
    assert shipment["booked_at"] == seed.T0.isoformat()
    assert [e["status"] for e in view["events"]] == ["picked_up", "delivered"]
    assert all(e["raw_code"] and e["shipment_id"] == shipment["id"] for e in view["events"])
    assert [c["holder"] for c in view["custody"]] == ["courier", "family"]
    handover = view["handover"]
    assert handover["id"] == handover_id and handover["state"] == "needs_review"
    assert handover["method"] == "review" and handover["verified"] is False
    assert handover["proof"]["receiver_name"] == FAMILY_RECEIVER
    assert handover["proof"]["relation_kind"] == "family"
    assert [i["kind"] for i in view["open_items"]] == ["handover_review"]
    async with desk.kit.sessions() as session:
        delivery = await session.get_one(Delivery, delivery_id)
        app = await session.get_one(Application, delivery.application_id)
    text = repr(view)
    assert delivery.tracking_token_hash not in text
    assert app.passport_no_hash == PASSPORT_HASH and PASSPORT_HASH not in text
    assert "Jl. Ijen" not in text and "1990-01-01" not in text  # no street, no date of birth
    assert not {"address", "passport_no_hash", "tracking_token_hash"} & set(view)


async def test_a_dispatcher_approves_a_family_handover(desk: Desk) -> None:
    delivery_id, handover_id = await family_delivered(desk, 1)
    desk.kit.clock.advance(timedelta(days=2))
    status, body = await desk.call(
        "POST",
        f"/api/v1/handovers/{handover_id}/review",
        json={"approve": True, "reason": "KK checked: wife of the applicant"},
    )
    assert status == 200, body
    assert body["id"] == handover_id and body["state"] == "verified" and body["verified"]
    assert body["delivery_state"] == "handed_over" and body["verified_at"]
    assert await desk.state(delivery_id) == "handed_over"
    async with desk.kit.sessions() as session:
        record = await session.get_one(Handover, handover_id)
        reviewed = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "handover.reviewed")
        )
        open_items = await session.scalar(
            select(func.count())
            .select_from(ExceptionItem)
            .where(ExceptionItem.resolved_at.is_(None))
        )
    assert record.reviewer_id == desk.user_id
    assert reviewed is not None and reviewed.actor == f"staff:{desk.user_id}"
    assert reviewed.reason == "KK checked: wife of the applicant"
    assert open_items == 0

    audits = await desk.audit_count()
    status, again = await desk.call(
        "POST",
        f"/api/v1/handovers/{handover_id}/review",
        json={"approve": False, "reason": "changed my mind"},
    )
    assert status == 409 and again["error"]["code"] == "handover_closed"
    assert await desk.audit_count() == audits


async def test_review_needs_a_handover_under_review_and_a_person(desk: Desk) -> None:
    sessions = desk.kit.sessions
    [delivery_id] = await seed.deliveries(sessions, desk.office_id, 1, start=5)
    shipment_id = await booked_shipment(sessions, delivery_id, waybill="JO0000000005")
    await _feed(
        sessions,
        shipment_id,
        event(
            Status.DELIVERED,
            seed.T0 + timedelta(hours=30),
            waybill="JO0000000005",
            receiver_name="Pemohon 5",
            relation="YBS",
        ),
    )
    async with sessions() as session:
        record = await session.scalar(select(Handover).where(Handover.delivery_id == delivery_id))
    assert record is not None and record.state == "awaiting_confirmation"
    audits = await desk.audit_count()
    review = {"approve": True, "reason": "looks fine"}
    path = f"/api/v1/handovers/{record.id}/review"
    status, body = await desk.call("POST", path, json=review)
    assert status == 409 and body["error"]["code"] == "not_under_review"
    status, body = await desk.call("POST", path, json=review, token=desk.unsigned)
    assert status == 403 and body["error"]["code"] == "reviewer_required"
    assert await desk.audit_count() == audits
    assert await desk.state(delivery_id) == "delivered"


async def test_a_returned_passport_is_reshipped_and_booked_as_attempt_two(desk: Desk) -> None:
    delivery_id = await returned(desk, 3)
    desk.kit.clock.set(seed.T0 + timedelta(days=2))
    status, body = await desk.call("POST", f"/api/v1/deliveries/{delivery_id}/reship", json={})
    assert status == 200, body
    assert body == {"outcome": "queued"}
    assert await desk.state(delivery_id) == "queued"
    custody = await _custody(desk.kit.sessions, delivery_id)
    assert custody[-1][0] == "office"
    async with desk.kit.sessions() as session:
        actors = set(
            await session.scalars(
                select(AuditEntry.actor).where(
                    AuditEntry.entity_id == delivery_id, AuditEntry.action == "delivery.state"
                )
            )
        )
    assert any(a.startswith("token:") for a in actors)  # the dispatcher's token acted

    status, again = await desk.call("POST", f"/api/v1/deliveries/{delivery_id}/reship", json={})
    assert status == 409 and again["error"]["code"] == "not_returned"

    await book.once(desk.kit.ctx, "w1")
    async with desk.kit.sessions() as session:
        attempts = list(
            await session.execute(
                select(Shipment.attempt_no, Shipment.status)
                .where(Shipment.delivery_id == delivery_id)
                .order_by(Shipment.attempt_no)
            )
        )
    assert [(a, s) for a, s in attempts] == [(1, "returned"), (2, "booked")]
    assert await desk.state(delivery_id) == "shipping"


async def test_a_too_late_return_is_collected_at_the_counter(desk: Desk) -> None:
    delivery_id = await returned(desk, 4, collect_in_days=5)
    desk.kit.clock.set(seed.T0 + timedelta(days=2))
    status, body = await desk.call("POST", f"/api/v1/deliveries/{delivery_id}/reship", json={})
    assert status == 200 and body == {"outcome": "collect_at_counter"}
    assert await desk.state(delivery_id) == "returned"  # waits at the counter

    status, body = await desk.call("POST", f"/api/v1/deliveries/{delivery_id}/collected", json=KTP)
    assert status == 200, body
    assert body == {"delivery_id": delivery_id, "state": "collected_at_office"}
    assert await desk.state(delivery_id) == "collected_at_office"
    assert (await _custody(desk.kit.sessions, delivery_id))[-1] == ("applicant", "counter")
    status, view = await desk.call("GET", f"/api/v1/deliveries/{delivery_id}")
    assert view["open_items"] == []

    status, again = await desk.call("POST", f"/api/v1/deliveries/{delivery_id}/collected", json=KTP)
    assert status == 409 and again["error"]["code"] == "not_collectable"


async def test_another_office_gets_404_for_every_id_and_changes_nothing(desk: Desk) -> None:
    delivery_id, handover_id = await family_delivered(desk, 1)
    returned_id = await returned(desk, 2)
    audits = await desk.audit_count()
    review = {"approve": True, "reason": "ok!"}
    calls = [
        ("GET", "/api/v1/deliveries/{}", delivery_id, None),
        ("GET", "/api/v1/deliveries/{}", returned_id, None),
        ("POST", "/api/v1/handovers/{}/review", handover_id, review),
        ("POST", "/api/v1/deliveries/{}/reship", returned_id, {}),
        ("POST", "/api/v1/deliveries/{}/collected", returned_id, KTP),
    ]
    for method, template, record_id, body in calls:
        path = template.format(record_id)
        status, theirs = await desk.call(method, path, json=body, token=desk.other)
        assert status == 404, (path, theirs)
        # exactly what an id that exists nowhere gets: nothing tells them it exists
        nowhere_path = template.format(999999)
        status, nowhere = await desk.call(method, nowhere_path, json=body, token=desk.other)
        assert status == 404 and nowhere == theirs, path
    assert await desk.audit_count() == audits
    assert await desk.state(delivery_id) == "needs_attention"
    assert await desk.state(returned_id) == "returned"


async def test_other_roles_are_refused(desk: Desk) -> None:
    delivery_id, handover_id = await family_delivered(desk, 1)
    audits = await desk.audit_count()
    calls = [
        ("GET", "/api/v1/exceptions", None),
        ("GET", f"/api/v1/deliveries/{delivery_id}", None),
        ("POST", f"/api/v1/handovers/{handover_id}/review", {"approve": True, "reason": "ok!"}),
        ("POST", f"/api/v1/deliveries/{delivery_id}/reship", {}),
        ("POST", f"/api/v1/deliveries/{delivery_id}/collected", KTP),
    ]
    for method, path, body in calls:
        status, refused = await desk.call(method, path, json=body, token=desk.intake)
        assert status == 403 and refused["error"]["code"] == "forbidden", path
        async with desk.kit.http.request(method, desk.url(path), json=body) as resp:
            assert resp.status == 401, path
    assert await desk.audit_count() == audits


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({"approve": "yes", "reason": "KK checked"}, ["$.approve"]),
        ({"approve": True}, ["$.reason"]),
        ({"approve": True, "reason": "  a  b  "}, ["$.reason"]),
        ({"approve": True, "reason": "x" * 501}, ["$.reason"]),
        ({"approve": True, "reason": "KK checked", "reviewer": 1}, ["$"]),
        ([True, "KK checked"], ["$"]),
    ],
)
async def test_bad_review_bodies_get_field_errors_and_change_nothing(
    desk: Desk, body: Any, paths: list[str]
) -> None:
    delivery_id, handover_id = await family_delivered(desk, 1)
    audits = await desk.audit_count()
    status, refused = await desk.call("POST", f"/api/v1/handovers/{handover_id}/review", json=body)
    assert status == 422, refused
    assert refused["error"]["code"] == "invalid_fields"
    assert [d["path"] for d in refused["error"]["details"]] == paths
    assert await desk.audit_count() == audits
    assert await desk.state(delivery_id) == "needs_attention"


async def test_bad_action_bodies_and_urls_never_reach_the_data(desk: Desk) -> None:
    delivery_id = await returned(desk, 2)
    audits = await desk.audit_count()
    status, body = await desk.call(
        "POST", f"/api/v1/deliveries/{delivery_id}/reship", json={"force": True}
    )
    assert status == 422 and body["error"]["details"][0]["path"] == "$"
    status, body = await desk.call(
        "POST", f"/api/v1/deliveries/{delivery_id}/collected", data=b"{not json"
    )
    assert status == 400 and body["error"]["code"] == "bad_request"
    status, body = await desk.call("POST", f"/api/v1/deliveries/{delivery_id}/reship", data=b"")
    assert status == 400

    for bad in ("abc", "0", "-1", "1.5", "9" * 30, "%20"):
        for method, path, payload in [
            ("GET", f"/api/v1/deliveries/{bad}", None),
            ("POST", f"/api/v1/deliveries/{bad}/reship", {}),
            ("POST", f"/api/v1/deliveries/{bad}/collected", KTP),
            ("POST", f"/api/v1/handovers/{bad}/review", {"approve": True, "reason": "ok!"}),
        ]:
            status, body = await desk.call(method, path, json=payload)
            assert status == 422, (path, body)
            assert body["error"]["details"][0]["path"] == "url.id", path

    for query, param in [
        ("limit=100000", "limit"),
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("cursor=abc", "cursor"),
        ("cursor=-5", "cursor"),
        ("cursor=" + "9" * 60, "cursor"),
        ("open=maybe", "open"),
        ("kind=DROP%20TABLE", "kind"),
        ("kind=" + "a" * 40, "kind"),
        ("lmit=10", "lmit"),  # a typo is refused, not answered with the default page
    ]:
        status, body = await desk.call("GET", f"/api/v1/exceptions?{query}")
        assert status == 422, (query, body)
        assert [d["path"] for d in body["error"]["details"]] == [f"url.{param}"], query
    assert await desk.audit_count() == audits
    assert await desk.state(delivery_id) == "returned"
