"""Cancel end to end and silent returns (issue 9, Deliver 5 and 7), over real HTTP against the
courier simulators on loopback with one ManualClock, both backends.

* J&T: the dispatcher cancels a booked shipment (the simulator checks the signed cancel with its
  own code and cancels the order), the delivery is re-booked as attempt 2 with a new reference;
  once the parcel is picked up the cancel is refused with 409 ``picked_up`` and nothing changes,
  whether we have polled the pickup yet (the courier refuses) or not (we refuse).
* Pos Indonesia (no cancel API): the cancel is requested, an item tells staff to cancel at the
  counter, and the passport waits at the counter for the applicant.
* A return that never gets its final scan opens ``return_overdue`` past its limit; the
  dispatcher marks the envelope received at the office (custody back to the office), then
  re-ships it.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import tracking_kit as kit_
import worker_seed as seed
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.status import Status
from courier.db.engine import SessionFactory, transaction
from courier.db.models import AuditEntry, CustodyEvent, ExceptionItem, OutboxItem, Shipment
from courier.domain.watch import STUCK_LIMITS
from courier.services import staff, watch
from worker import book, track


@dataclass
class Desk:
    kit: kit_.Kit
    office_id: int
    token: str
    other: str  # a dispatcher of another office
    intake: str

    async def call(
        self, path: str, body: Any, *, token: str | None = None, method: str = "POST"
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        url = self.kit.url(path)
        async with self.kit.http.request(method, url, json=body, headers=headers) as resp:
            return resp.status, await resp.json()

    async def shipments(self, delivery_id: int) -> list[Shipment]:
        async with self.kit.sessions() as session:
            return list(
                await session.scalars(
                    select(Shipment)
                    .where(Shipment.delivery_id == delivery_id)
                    .order_by(Shipment.attempt_no)
                )
            )

    async def audits(self, action: str) -> int:
        async with self.kit.sessions() as session:
            query = select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
            return int(await session.scalar(query) or 0)


async def _token(sessions: SessionFactory, code: str, role: str, user_id: int) -> str:
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


async def _desk(kit: kit_.Kit, courier: str) -> Desk:
    code = kit_.office_code(courier)
    office_id = await seed.office(kit.sessions, courier=courier, code=code)
    other_id = await seed.office(kit.sessions, courier=courier, code="KDR")
    user = await kit_.staff(kit.sessions, office_id, "dina")
    other = await kit_.staff(kit.sessions, other_id, "eko")
    return Desk(
        kit,
        office_id,
        await _token(kit.sessions, code, "dispatcher", user),
        await _token(kit.sessions, "KDR", "dispatcher", other),
        await _token(kit.sessions, code, "intake", user),
    )


@pytest.fixture
async def kit(
    engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> AsyncIterator[kit_.Kit]:
    async with kit_.make_kit(engine, sessions, tmp_path) as made:
        yield made


SIGNATURE = base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(64))).decode()
CANCEL = "/api/v1/deliveries/{}/cancel"
RETURNED = "/api/v1/deliveries/{}/returned-to-office"


async def test_jnt_cancel_before_pickup_then_rebook_as_attempt_two(kit: kit_.Kit) -> None:
    desk = await _desk(kit, "jnt")
    _, delivery_id = await kit_.seed_delivery(kit, courier="jnt", office_id=desk.office_id)
    assert await book.once(kit.ctx, "w1") == 1
    [first] = await desk.shipments(delivery_id)
    assert first.status == "booked"

    body = {"reason": "pemohon pindah alamat", "then": "rebook"}
    status, other = await desk.call(CANCEL.format(delivery_id), body, token=desk.other)
    assert status == 404 and other["error"]["code"] == "unknown_delivery"
    status, _ = await desk.call(CANCEL.format(delivery_id), body, token=desk.intake)
    assert status == 403
    status, bad = await desk.call(CANCEL.format(delivery_id), {"reason": "x", "then": "later"})
    assert status == 422
    assert {d["path"] for d in bad["error"]["details"]} == {"$.reason", "$.then"}
    assert kit.jnt_sim.state.orders[first.client_reference].cancelled_at is None
    faults = kit.jnt_sim.state.faults
    faults.configure({"endpoints": {"cancel": {"error_rate": 1}}})  # the courier is down
    status, down = await desk.call(CANCEL.format(delivery_id), body)
    assert status == 503 and down["error"]["code"] == "courier_unavailable"
    assert (await desk.shipments(delivery_id))[0].status == "booked"
    assert await desk.audits("shipment.cancel") == 0
    faults.configure({"endpoints": {"cancel": {"error_rate": 0}}})

    status, done = await desk.call(CANCEL.format(delivery_id), body)
    assert status == 200, done
    assert done == {
        "delivery_id": delivery_id,
        "shipment_id": first.id,
        "courier_confirmed": True,
        "then": "queued",
        "delivery_state": "queued",
    }
    # the simulator verified the signed cancel with its own code and cancelled its order
    assert kit.jnt_sim.state.orders[first.client_reference].cancelled_at == kit.clock.now()
    assert await desk.audits("shipment.cancel") == 1

    assert await book.once(kit.ctx, "w1") == 1
    cancelled, second = await desk.shipments(delivery_id)
    assert (cancelled.status, second.attempt_no, second.status) == ("cancelled", 2, "booked")
    assert second.client_reference != cancelled.client_reference
    counts = kit.jnt_sim.state.create_counts
    assert (counts[cancelled.client_reference], counts[second.client_reference]) == (1, 1)
    assert await kit_.delivery_state(kit, delivery_id) == "shipping"


async def test_jnt_cancel_after_pickup_is_refused_with_409_and_changes_nothing(
    kit: kit_.Kit,
) -> None:
    desk = await _desk(kit, "jnt")
    _, delivery_id = await kit_.seed_delivery(kit, courier="jnt", office_id=desk.office_id)
    assert await book.once(kit.ctx, "w1") == 1
    kit.clock.advance(timedelta(days=1))  # the courier has come (not polled yet: we say booked)
    [shipment] = await desk.shipments(delivery_id)
    assert shipment.status == "booked"

    body = {"reason": "pemohon ambil sendiri", "then": "counter"}
    status, refused = await desk.call(CANCEL.format(delivery_id), body)
    assert status == 409 and refused["error"]["code"] == "picked_up", refused
    assert "picked the parcel up" in refused["error"]["message"]
    [after] = await desk.shipments(delivery_id)
    assert after.status == "booked" and await desk.audits("shipment.cancel") == 0
    assert kit.jnt_sim.state.orders[shipment.client_reference].cancelled_at is None

    assert await track.once(kit.ctx, "w1") == 1  # now we know: refused without asking
    status, refused = await desk.call(CANCEL.format(delivery_id), body)
    assert status == 409 and refused["error"]["code"] == "picked_up"
    assert await kit_.delivery_state(kit, delivery_id) == "shipping"


async def test_a_cancelled_shipment_leaves_the_open_manifest_and_none_after_its_signature(
    kit: kit_.Kit,
) -> None:
    desk = await _desk(kit, "jnt")
    _, first = await kit_.seed_delivery(kit, courier="jnt", office_id=desk.office_id, i=1)
    _, second = await kit_.seed_delivery(kit, courier="jnt", office_id=desk.office_id, i=2)
    _, third = await kit_.seed_delivery(kit, courier="jnt", office_id=desk.office_id, i=3)
    assert await book.once(kit.ctx, "w1") == 3
    status, made = await desk.call("/api/v1/manifests", {"courier": "jnt"})
    assert status == 201 and len(made["items"]) == 3
    body = {"reason": "pemohon ambil sendiri", "then": "counter"}
    status, done = await desk.call(CANCEL.format(first), body)
    assert status == 200 and done["courier_confirmed"] is True, done
    status, shown = await desk.call(f"/api/v1/manifests/{made['id']}", None, method="GET")
    kept = [i["shipment_id"] for i in shown["items"]]
    assert len(kept) == 2 and done["shipment_id"] not in kept
    assert await desk.audits("manifest.item_removed") == 1

    seals = {"items": [{"shipment_id": s, "seal_number": f"SEAL-{s:04d}"} for s in kept]}
    status, _ = await desk.call(f"/api/v1/manifests/{made['id']}/seals", seals)
    assert status == 200
    signed = {"courier_agent_name": "Budi (J&T Blitar)", "courier_signature": SIGNATURE}
    status, handed = await desk.call(f"/api/v1/manifests/{made['id']}/handover", signed)
    assert status == 200, handed
    # the courier holds the others now, before any scan: no cancel, whatever we last polled
    for delivery_id in (second, third):
        status, refused = await desk.call(CANCEL.format(delivery_id), body)
        assert status == 409 and refused["error"]["code"] == "picked_up"
        assert "manifest" in refused["error"]["message"]
    assert await desk.audits("shipment.cancel") == 1


async def test_pos_cancel_is_requested_with_an_item_and_the_passport_waits_at_the_counter(
    kit: kit_.Kit,
) -> None:
    desk = await _desk(kit, "posind")
    _, delivery_id = await kit_.seed_delivery(kit, courier="posind", office_id=desk.office_id)
    assert await book.once(kit.ctx, "w1") == 1
    [shipment] = await desk.shipments(delivery_id)
    assert shipment.status == "booked" and shipment.waybill

    body = {"reason": "pemohon ambil sendiri di kantor", "then": "counter"}
    status, done = await desk.call(CANCEL.format(delivery_id), body)
    assert status == 200, done
    assert (done["courier_confirmed"], done["then"], done["delivery_state"]) == (
        False,
        "collect_at_counter",
        "returned",
    )
    [after] = await desk.shipments(delivery_id)
    assert after.status == "cancelled" and "counter" in (after.status_reason or "")
    async with kit.sessions() as session:
        [item] = list(
            await session.scalars(
                select(ExceptionItem).where(ExceptionItem.kind == "cancel_at_courier")
            )
        )
        told = await session.scalar(
            select(func.count())
            .select_from(OutboxItem)
            .where(OutboxItem.kind == "applicant_collect_at_counter")
        )
    assert item.resolved_at is None and shipment.client_reference in item.detail
    assert str(shipment.waybill) in item.detail and told == 1
    status, view = await desk.call(f"/api/v1/deliveries/{delivery_id}", None, method="GET")
    assert [i["kind"] for i in view["open_items"]] == ["cancel_at_courier"]
    assert view["open_items"][0]["next_step_en"].startswith("This courier offers no cancel")

    status, again = await desk.call(CANCEL.format(delivery_id), body)
    assert status == 409 and again["error"]["code"] == "no_open_shipment"
    status, collected = await desk.call(
        f"/api/v1/deliveries/{delivery_id}/collected",
        {"id_type": "ktp", "id_number": "3505123456780001"},
    )
    assert status == 200 and collected["state"] == "collected_at_office"


async def _status(kit: kit_.Kit, delivery_id: int) -> str:
    async with kit.sessions() as session:
        found = await session.scalar(
            select(Shipment.status).where(Shipment.delivery_id == delivery_id)
        )
        return str(found)


async def test_a_silent_return_opens_an_item_and_is_received_back_at_the_office(
    kit: kit_.Kit,
) -> None:
    desk = await _desk(kit, "jnt")
    kit.jnt_sim.state.variations.configure(
        {"seed": "back", "rates": {"return_without_final_scan": 1}}
    )
    _, delivery_id = await kit_.seed_delivery(
        kit, courier="jnt", outcome="returned", office_id=desk.office_id
    )
    status, early = await desk.call(RETURNED.format(delivery_id), {"seal_intact": True})
    assert status == 409 and early["error"]["code"] == "not_with_courier"  # nothing booked

    async def returning() -> bool:
        return await _status(kit, delivery_id) == "returning"

    await kit_.drive(kit, returning)
    async with kit.sessions() as session:
        shipment = await session.scalar(select(Shipment).where(Shipment.delivery_id == delivery_id))
    assert shipment is not None and shipment.last_event_at is not None
    quiet_until = shipment.last_event_at + STUCK_LIMITS[Status.RETURNING]
    await watch.scan_stuck(kit.sessions, now=quiet_until - timedelta(minutes=1))
    assert await kit_.exceptions(kit, "return_overdue") == []
    kit.clock.set(quiet_until + timedelta(hours=1))
    assert await track.once(kit.ctx, "w1") <= 1  # the courier still says nothing new
    assert await _status(kit, delivery_id) == "returning"
    assert await watch.scan_stuck(kit.sessions, now=kit.clock.now()) >= 1
    [overdue] = await kit_.exceptions(kit, "return_overdue")
    assert overdue.resolved_at is None and overdue.shipment_id == shipment.id

    body = {"seal_intact": True, "note": "amplop utuh"}
    status, _ = await desk.call(RETURNED.format(delivery_id), body, token=desk.other)
    assert status == 404
    status, done = await desk.call(RETURNED.format(delivery_id), body)
    assert status == 200, done
    assert done == {
        "delivery_id": delivery_id,
        "shipment_id": shipment.id,
        "delivery_state": "returned",
        "seal_number": None,
        "seal_matches": None,
    }
    assert await _status(kit, delivery_id) == "returned"
    assert await desk.audits("shipment.returned_to_office") == 1
    [overdue] = await kit_.exceptions(kit, "return_overdue")
    assert overdue.resolved_at is not None
    [returned_item] = await kit_.exceptions(kit, "returned")
    assert returned_item.resolved_at is None

    status, reshipped = await desk.call(f"/api/v1/deliveries/{delivery_id}/reship", {})
    assert status == 200 and reshipped == {"outcome": "queued"}
    async with kit.sessions() as session:
        custody = list(
            await session.execute(
                select(CustodyEvent.holder, CustodyEvent.evidence)
                .where(CustodyEvent.delivery_id == delivery_id)
                .order_by(CustodyEvent.id)
            )
        )
    holders = [h for h, _ in custody]
    assert holders[-2:] == ["courier", "office"]  # one entry back at the office, not two
    assert custody[-1][1] == {"event": "returned_to_office", "seal_intact": True}
    status, again = await desk.call(RETURNED.format(delivery_id), body)
    assert status == 409 and again["error"]["code"] == "not_with_courier"
