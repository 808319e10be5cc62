"""Staff settle a booking whose outcome only the courier's portal can tell.

A shipment rests in ``booking`` with its delivery in needs_attention when the worker could not
settle it (courier/services/booking.py: the order may exist, the courier's answer was not
understood, J&T says the reference exists but not its waybill, our code failed on every try).
A dispatcher looks the shipment's reference up in the courier's portal and then either

* :func:`record_waybill` — the order is there: the waybill read in the portal is recorded, the
  shipment is booked and tracked from then on, exactly as if the courier had answered; or
* :func:`release_booking` — the order is not there: the attempt is closed
  (``booking_failed``, the reason in the audit log) and the delivery is queued again, so the
  worker books a new attempt under a new reference (the old reference is never sent again).

Re-ship and collected-at-the-counter use :func:`close_open_booking` on such a delivery, so
neither answers 409 because a booking was left in doubt.

Each use case locks the delivery, refuses while a worker holds a live lease on the shipment
(it may be talking to the courier right now), audits, and resolves the items that asked for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.status import Status
from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import Delivery, Shipment
from courier.domain.exception_kinds import ExceptionKind
from courier.domain.states import DeliveryState
from courier.services import audit, items, lifecycle, notices
from courier.services.errors import Kind, ServiceError
from courier.services.staff import Caller

#: the items a settled booking answers
BOOKING_ITEM_KINDS: tuple[str, ...] = tuple(
    k.value
    for k in (
        ExceptionKind.BOOKING_UNKNOWN,
        ExceptionKind.BOOKING_EXISTS,
        ExceptionKind.ANSWER_NOT_UNDERSTOOD,
        ExceptionKind.BOOKING_FAULT,
    )
)


@dataclass(frozen=True, slots=True)
class WaybillRecorded:
    delivery_id: int
    shipment_id: int
    reference: str
    waybill: str
    status: str
    delivery_state: str


@dataclass(frozen=True, slots=True)
class BookingReleased:
    delivery_id: int
    shipment_id: int  # the closed attempt
    reference: str  # never sent again
    delivery_state: str


async def _delivery(session: AsyncSession, delivery_id: int, office_id: int) -> Delivery:
    delivery = await session.get(Delivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.office_id != office_id:
        raise ServiceError(Kind.NOT_FOUND, "unknown_delivery", "no such delivery")
    return delivery


async def booking_in_doubt(session: AsyncSession, delivery_id: int) -> Shipment | None:
    """The delivery's shipment still in ``booking`` (at most one: one open shipment each)."""
    found: Shipment | None = await session.scalar(
        select(Shipment)
        .where(Shipment.delivery_id == delivery_id, Shipment.status == Status.BOOKING.value)
        .with_for_update()
    )
    return found


def _not_in_flight(shipment: Shipment, now: datetime) -> None:
    if shipment.lease_owner is not None and (
        shipment.lease_until is None or shipment.lease_until > now
    ):
        raise ServiceError(
            Kind.CONFLICT,
            "booking_in_progress",
            "a worker is settling this booking with the courier right now; try again in a "
            "few minutes",
        )


async def _in_doubt(session: AsyncSession, delivery: Delivery, now: datetime) -> Shipment:
    shipment = await booking_in_doubt(session, delivery.id)
    if shipment is None:
        raise ServiceError(
            Kind.CONFLICT,
            "no_booking_in_doubt",
            "this delivery has no shipment waiting in booking",
        )
    _not_in_flight(shipment, now)
    return shipment


async def record_waybill(
    ctx: AppContext, caller: Caller, delivery_id: int, *, waybill: str, note: str
) -> WaybillRecorded:
    """The order was found in the courier's portal: record its waybill; the shipment is booked
    and tracked from now on."""
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        delivery = await _delivery(session, delivery_id, caller.office_id)
        shipment = await _in_doubt(session, delivery, now)
        taken = await session.scalar(
            select(Shipment.id).where(
                Shipment.courier_code == shipment.courier_code,
                Shipment.waybill == waybill,
                Shipment.id != shipment.id,
            )
        )
        if taken is not None:
            raise ServiceError(
                Kind.CONFLICT,
                "waybill_in_use",
                "this waybill is already recorded for another shipment of this courier",
            )
        shipment.status = Status.BOOKED.value
        shipment.waybill = waybill
        shipment.booked_at = now
        shipment.next_poll_at = now  # tracking takes it from here
        shipment.lease_owner = None
        shipment.lease_until = None
        shipment.status_reason = "waybill recorded by staff from the courier's portal"
        shipment.updated_at = now
        audit.record(
            session,
            at=now,
            actor=caller.actor,
            action="shipment.waybill_recorded",
            entity="shipment",
            entity_id=shipment.id,
            office_id=delivery.office_id,
            before={"status": Status.BOOKING.value},
            after={"status": Status.BOOKED.value, "waybill": waybill},
            reason=note or "found in the courier's portal",
        )
        await notices.queue_booked(session, delivery, shipment, now=now)
        lifecycle.move_delivery(
            session,
            delivery,
            DeliveryState.SHIPPING,
            actor=caller.actor,
            now=now,
            reason="booked: waybill recorded from the courier's portal",
        )
        await items.resolve_exceptions(
            session,
            delivery_id=delivery.id,
            kinds=BOOKING_ITEM_KINDS,
            by=caller.actor,
            resolution=f"waybill {waybill} recorded from the courier's portal",
            now=now,
        )
        return WaybillRecorded(
            delivery.id,
            shipment.id,
            shipment.client_reference,
            waybill,
            shipment.status,
            delivery.state,
        )


async def close_open_booking(
    session: AsyncSession, delivery: Delivery, *, actor: str, now: datetime, reason: str
) -> Shipment | None:
    """Close the delivery's shipment left in ``booking`` (``booking_failed``, audited) and
    resolve the items about it; None when there is none. 409 while a worker is on it."""
    shipment = await booking_in_doubt(session, delivery.id)
    if shipment is None:
        return None
    _not_in_flight(shipment, now)
    shipment.status = Status.BOOKING_FAILED.value
    shipment.status_reason = reason
    shipment.next_poll_at = None
    shipment.lease_owner = None
    shipment.lease_until = None
    shipment.updated_at = now
    audit.record(
        session,
        at=now,
        actor=actor,
        action="shipment.released",
        entity="shipment",
        entity_id=shipment.id,
        office_id=delivery.office_id,
        before={"status": Status.BOOKING.value},
        after={
            "status": Status.BOOKING_FAILED.value,
            "client_reference": shipment.client_reference,
        },
        reason=reason,
    )
    await items.resolve_exceptions(
        session,
        delivery_id=delivery.id,
        kinds=BOOKING_ITEM_KINDS,
        by=actor,
        resolution=reason,
        now=now,
    )
    return shipment


async def requeue(session: AsyncSession, delivery: Delivery, *, actor: str, now: datetime) -> None:
    """Back to the booking queue for a new attempt (a new reference)."""
    await lifecycle.requeue(
        session, delivery, actor=actor, now=now, reason="released for a new booking attempt"
    )


async def release_booking(
    ctx: AppContext, caller: Caller, delivery_id: int, *, reason: str
) -> BookingReleased:
    """The order is not in the courier's portal: close this attempt and queue the delivery for
    a new one under a new reference."""
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        delivery = await _delivery(session, delivery_id, caller.office_id)
        await _in_doubt(session, delivery, now)  # 409 before anything changes
        shipment = await close_open_booking(
            session, delivery, actor=caller.actor, now=now, reason=f"released by staff: {reason}"
        )
        assert shipment is not None
        await requeue(session, delivery, actor=caller.actor, now=now)
        if delivery.state != DeliveryState.QUEUED.value:
            raise ServiceError(
                Kind.CONFLICT,
                "not_releasable",
                f"a delivery in state {delivery.state} cannot be queued again",
            )
        return BookingReleased(delivery.id, shipment.id, shipment.client_reference, delivery.state)
