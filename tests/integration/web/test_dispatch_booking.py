"""A booking left in doubt, settled by a dispatcher over real HTTP (both backends): record the
waybill found in the courier's portal, or release the attempt for a new one; re-ship and
collected no longer answer 409 for it; other offices 404, other roles 403, bad bodies 422 with
the field named, and nothing changed."""

from __future__ import annotations

import worker_seed as seed
from sqlalchemy import select
from test_dispatch import KTP, Desk, desk  # noqa: F401 (the fixture)

from core.status import Status
from courier.db.engine import SessionFactory, transaction
from courier.db.models import Delivery, ExceptionItem, Shipment
from courier.domain.exception_kinds import ExceptionKind
from courier.services import items


async def parked(sessions: SessionFactory, office_id: int, i: int) -> int:
    """Application ``i``'s delivery with its shipment parked in ``booking`` for a person, as
    the worker leaves it (courier/services/booking.py ``_settle_person``)."""
    [delivery_id] = await seed.deliveries(sessions, office_id, 1, start=i)
    async with transaction(sessions) as session:
        delivery = await session.get_one(Delivery, delivery_id)
        delivery.state = "needs_attention"
        shipment = Shipment(
            delivery_id=delivery_id,
            attempt_no=1,
            courier_code="jnt",
            client_reference=f"BLT2026{i:08d}01",
            status=Status.BOOKING.value,
            claim_count=1,
            reconcile_count=3,
            created_at=seed.T0,
            updated_at=seed.T0,
        )
        session.add(shipment)
        await session.flush()
        await items.open_exception(
            session,
            office_id=office_id,
            delivery_id=delivery_id,
            shipment_id=shipment.id,
            kind=ExceptionKind.BOOKING_EXISTS,
            detail=f"J&T Express refused reference {shipment.client_reference} as already used",
            dedupe_key=f"booking_exists:{shipment.id}",
            now=seed.T0,
        )
    return delivery_id


async def _shipments(sessions: SessionFactory, delivery_id: int) -> list[Shipment]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(Shipment).where(Shipment.delivery_id == delivery_id).order_by(Shipment.id)
            )
        )


async def _open_items(sessions: SessionFactory, delivery_id: int) -> list[str]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(ExceptionItem.kind).where(
                    ExceptionItem.delivery_id == delivery_id, ExceptionItem.resolved_at.is_(None)
                )
            )
        )


async def test_record_the_waybill_found_in_the_portal(desk: Desk) -> None:  # noqa: F811
    delivery_id = await parked(desk.kit.sessions, desk.office_id, 1)
    status, body = await desk.call(
        "POST",
        f"/api/v1/deliveries/{delivery_id}/booking/waybill",
        json={"waybill": "JO0000001234", "note": "found in the J&T portal"},
    )
    assert status == 200, body
    assert body == {
        "delivery_id": delivery_id,
        "shipment_id": body["shipment_id"],
        "reference": "BLT20260000000101",
        "shipment_status": "booked",
        "waybill": "JO0000001234",
        "delivery_state": "shipping",
    }
    [ship] = await _shipments(desk.kit.sessions, delivery_id)
    assert (ship.status, ship.waybill) == ("booked", "JO0000001234")
    assert ship.next_poll_at is not None  # tracked from now on
    assert await _open_items(desk.kit.sessions, delivery_id) == []
    # the delivery view shows it booked
    status, view = await desk.call("GET", f"/api/v1/deliveries/{delivery_id}")
    assert status == 200 and view["shipments"][0]["waybill"] == "JO0000001234"
    # nothing is in doubt any more
    status, again = await desk.call(
        "POST", f"/api/v1/deliveries/{delivery_id}/booking/release", json={"reason": "oops!"}
    )
    assert status == 409 and again["error"]["code"] == "no_booking_in_doubt"


async def test_release_closes_the_attempt_and_queues_a_new_one(desk: Desk) -> None:  # noqa: F811
    delivery_id = await parked(desk.kit.sessions, desk.office_id, 1)
    status, body = await desk.call(
        "POST",
        f"/api/v1/deliveries/{delivery_id}/booking/release",
        json={"reason": "reference not in the J&T portal"},
    )
    assert status == 200, body
    assert (body["shipment_status"], body["waybill"], body["delivery_state"]) == (
        "booking_failed",
        None,
        "queued",
    )
    [ship] = await _shipments(desk.kit.sessions, delivery_id)
    assert ship.status == "booking_failed" and "reference not in" in (ship.status_reason or "")
    assert await desk.state(delivery_id) == "queued"
    assert await _open_items(desk.kit.sessions, delivery_id) == []


async def test_reship_and_collected_no_longer_answer_409_for_a_booking_in_doubt(
    desk: Desk,  # noqa: F811
) -> None:
    first = await parked(desk.kit.sessions, desk.office_id, 1)
    status, body = await desk.call("POST", f"/api/v1/deliveries/{first}/reship", json={})
    assert (status, body) == (200, {"outcome": "queued"})
    second = await parked(desk.kit.sessions, desk.office_id, 2)
    status, body = await desk.call("POST", f"/api/v1/deliveries/{second}/collected", json=KTP)
    assert status == 200 and body["state"] == "collected_at_office"
    for delivery_id in (first, second):
        [ship] = await _shipments(desk.kit.sessions, delivery_id)
        assert ship.status == "booking_failed"


async def test_other_offices_roles_and_bad_bodies_change_nothing(desk: Desk) -> None:  # noqa: F811
    delivery_id = await parked(desk.kit.sessions, desk.office_id, 1)
    audits = await desk.audit_count()
    waybill = f"/api/v1/deliveries/{delivery_id}/booking/waybill"
    release = f"/api/v1/deliveries/{delivery_id}/booking/release"
    for path, body in ((waybill, {"waybill": "JO0000001234"}), (release, {"reason": "gone!"})):
        status, theirs = await desk.call("POST", path, json=body, token=desk.other)
        assert status == 404 and theirs["error"]["code"] == "unknown_delivery", path
        status, _ = await desk.call("POST", path, json=body, token=desk.intake)
        assert status == 403, path
    for path, body, field in (
        (waybill, {"waybill": "JO 1"}, "$.waybill"),
        (waybill, {}, "$.waybill"),
        (waybill, {"waybill": "JO0000001234", "force": True}, "$"),
        (release, {"reason": "  "}, "$.reason"),
    ):
        status, bad = await desk.call("POST", path, json=body)
        assert status == 422, (path, body, bad)
        assert field in [d["path"] for d in bad["error"]["details"]], bad
    assert await desk.audit_count() == audits
    [ship] = await _shipments(desk.kit.sessions, delivery_id)
    assert ship.status == "booking"
