"""Cancel a booked shipment before the courier picks it up (issue 9, Deliver 7), then re-book or
keep the passport for collection at the counter.

The courier is asked between two short transactions, never inside one (a courier call may take
seconds; SQLite has one writer): the first checks the delivery is the caller's office's and its
open shipment is booked and not picked up; the courier is asked; the second records the outcome
on the shipment as it is then (a poll may have moved it meanwhile: the courier's word decides).

* A courier with a cancel API (J&T's signed cancel): cancelled there, then here. It refuses once
  the parcel is picked up ("Status pesanan adalah : GOT"): 409 ``picked_up``, nothing changed.
* A courier without one (Pos Indonesia, whose API has no cancel): the shipment is cancelled here
  as *requested*, and an item tells staff to cancel the order at the courier's counter or portal
  (``cancel_at_courier``). The envelope never left the office, so the courier has nothing to
  carry; the item is about the order (and its bill) at the courier.
* A courier that did not answer: 503, nothing changed (cancelling again is harmless).

Then ``rebook`` queues the delivery for a new attempt (a new reference: the cancelled one is
never reused), or ``counter`` keeps the passport at the office for the applicant to collect
(the applicant is told; :func:`courier.services.watch.collected_at_counter` closes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import (
    AuthFailed,
    Booking,
    CourierError,
    CourierRejected,
    NotSupported,
    RateLimited,
)
from core.status import Status
from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import (
    OPEN_SHIPMENT_STATUSES,
    CustodyEvent,
    Delivery,
    Manifest,
    ManifestItem,
    Shipment,
)
from courier.domain.exception_kinds import ExceptionKind
from courier.domain.states import CANCELLABLE_BY_STAFF, DeliveryState, check_status_move
from courier.services import audit, items, lifecycle, notices
from courier.services.errors import Kind, ServiceError
from courier.services.staff import Caller
from courier.services.watch import AT_COUNTER_REASON

log = structlog.get_logger()

THEN = ("rebook", "counter")
# where a delivery may be while its shipment is booked (needs attention: e.g. a deadline item)
_DELIVERY_STATES = (DeliveryState.SHIPPING.value, DeliveryState.NEEDS_ATTENTION.value)


@dataclass(frozen=True, slots=True)
class Cancelled:
    delivery_id: int
    shipment_id: int
    courier_confirmed: bool  # False: cancel requested; staff cancel at the courier's counter
    then: str  # "queued" (a new attempt will be booked) or "collect_at_counter"
    delivery_state: str


@dataclass(frozen=True, slots=True)
class _Target:
    shipment_id: int
    courier_code: str
    booking: Booking


async def cancel_shipment(
    ctx: AppContext, caller: Caller, delivery_id: int, *, reason: str, then: str
) -> Cancelled:
    """Cancel the delivery's booked shipment (not yet picked up) and re-book or switch to the
    counter (``then``: ``rebook`` or ``counter``). Not found outside the caller's office;
    conflict (with the reason) when there is no booked shipment or the courier has picked the
    parcel up; unavailable when the courier did not answer (nothing changed)."""
    if then not in THEN:  # the schema already refuses it; a use case called directly too
        raise ValueError(f"then must be one of {THEN}")
    target = await _check(ctx, caller, delivery_id)
    adapter = ctx.couriers.get(target.courier_code)
    confirmed = False
    if adapter is not None and adapter.capabilities.cancel:
        try:
            await adapter.cancel(target.booking, reason)
            confirmed = True
        except NotSupported:
            confirmed = False
        except CourierRejected as refused:
            raise _refusal(refused) from refused
        except CourierError as err:  # unavailable, rate limited, auth, unreadable answer
            raise _unavailable(err) from err
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        return await _record(
            session,
            caller,
            delivery_id,
            target,
            confirmed=confirmed,
            reason=reason,
            then=then,
            now=now,
        )


async def _check(ctx: AppContext, caller: Caller, delivery_id: int) -> _Target:
    async with ctx.sessions() as session:
        delivery = await session.get(Delivery, delivery_id)
        if delivery is None or delivery.office_id != caller.office_id:
            raise ServiceError(Kind.NOT_FOUND, "unknown_delivery", "no such delivery")
        shipment = await _open_shipment(session, delivery.id)
        _check_cancellable(delivery, shipment)
        await _check_at_office(session, delivery.id)
        assert shipment is not None
        return _Target(
            shipment.id,
            shipment.courier_code,
            Booking(
                reference=shipment.client_reference,
                waybill=shipment.waybill or "",
                courier_reference=shipment.waybill or "",
            ),
        )


async def _open_shipment(session: AsyncSession, delivery_id: int) -> Shipment | None:
    found: Shipment | None = await session.scalar(
        select(Shipment).where(
            Shipment.delivery_id == delivery_id, Shipment.status.in_(OPEN_SHIPMENT_STATUSES)
        )
    )
    return found


def _check_cancellable(delivery: Delivery, shipment: Shipment | None) -> None:
    if shipment is None:
        raise ServiceError(
            Kind.CONFLICT, "no_open_shipment", "this delivery has no shipment with a courier"
        )
    status = Status(shipment.status)
    if status is Status.BOOKING:
        raise ServiceError(
            Kind.CONFLICT,
            "booking_in_progress",
            "the booking has no answer from the courier yet: wait for it (or act on its "
            "booking item) before cancelling",
        )
    if status not in CANCELLABLE_BY_STAFF:
        raise ServiceError(
            Kind.CONFLICT,
            "picked_up",
            f"the courier has already picked the parcel up (shipment {status.value}): it can "
            "no longer be cancelled; wait for the delivery or a return",
        )
    if delivery.state not in _DELIVERY_STATES:
        raise ServiceError(
            Kind.CONFLICT,
            "not_cancellable",
            f"a delivery in state {delivery.state} cannot be cancelled and re-routed",
        )


async def _check_at_office(session: AsyncSession, delivery_id: int) -> None:
    """The passport must still be at the office: once a manifest is signed the courier holds it
    even before its first scan, and bringing it back is a return, not a cancel."""
    holder = await session.scalar(
        select(CustodyEvent.holder)
        .where(CustodyEvent.delivery_id == delivery_id)
        .order_by(CustodyEvent.occurred_at.desc(), CustodyEvent.id.desc())
        .limit(1)
    )
    if holder is not None and holder != "office":
        raise ServiceError(
            Kind.CONFLICT,
            "picked_up",
            "the passport was handed to the courier (the pickup manifest is signed): it can no "
            "longer be cancelled; wait for the delivery or a return",
        )


async def _off_open_manifest(
    session: AsyncSession, shipment: Shipment, actor: str, now: datetime
) -> None:
    """A cancelled shipment leaves the pickup manifest still being prepared (nobody signed it
    yet), so the others on it can still be handed over; the line is kept in the audit log."""
    found = (
        await session.execute(
            select(ManifestItem, Manifest)
            .join(Manifest, Manifest.id == ManifestItem.manifest_id)
            .where(ManifestItem.shipment_id == shipment.id, Manifest.state == "open")
        )
    ).first()
    if found is None:
        return
    item, manifest = found
    audit.record(
        session,
        at=now,
        actor=actor,
        action="manifest.item_removed",
        entity="manifest",
        entity_id=manifest.id,
        office_id=manifest.office_id,
        before={"shipment_id": shipment.id, "seal_number": item.seal_number},
        reason="the shipment was cancelled before pickup",
    )
    await session.delete(item)


def _refusal(refused: CourierRejected) -> ServiceError:
    if refused.code == "picked_up":
        return ServiceError(
            Kind.CONFLICT,
            "picked_up",
            "the courier has already picked the parcel up: it can no longer be cancelled; "
            "wait for the delivery or a return",
        )
    return ServiceError(
        Kind.CONFLICT,
        "cancel_refused",
        f"the courier refused the cancel ({refused.code}): {refused.reason}",
    )


def _unavailable(err: CourierError) -> ServiceError:
    log.warning("cancel.courier_unavailable", courier=err.courier, error=type(err).__name__)
    if isinstance(err, AuthFailed):
        return ServiceError(
            Kind.UNAVAILABLE,
            "courier_auth",
            "the courier refused our credentials for the cancel; nothing was changed: check "
            "the courier's configuration",
        )
    retry_after = int(err.retry_after) + 1 if isinstance(err, RateLimited) else None
    return ServiceError(
        Kind.UNAVAILABLE,
        "courier_unavailable",
        "the courier did not answer the cancel; nothing was changed: try again",
        retry_after=retry_after,
    )


async def _record(
    session: AsyncSession,
    caller: Caller,
    delivery_id: int,
    target: _Target,
    *,
    confirmed: bool,
    reason: str,
    then: str,
    now: datetime,
) -> Cancelled:
    delivery = await session.get_one(Delivery, delivery_id, with_for_update=True)
    shipment = await session.get_one(
        Shipment, target.shipment_id, with_for_update=True, populate_existing=True
    )
    before = Status(shipment.status)
    if not confirmed:
        # only the courier's own word may override what happened meanwhile: a poll that saw
        # the pickup since the check wins over a cancel that was only requested
        _check_cancellable(delivery, shipment)
        await _check_at_office(session, delivery.id)
    elif before is not Status.CANCELLED:
        check_status_move(before, Status.CANCELLED)
    actor = caller.actor
    shipment.status = Status.CANCELLED.value
    shipment.status_reason = (
        f"cancelled by the office: {reason}"
        if confirmed
        else f"cancel requested by the office, to be done at the courier's counter: {reason}"
    )
    shipment.next_poll_at = None
    shipment.lease_owner = None
    shipment.lease_until = None
    shipment.updated_at = now
    audit.record(
        session,
        at=now,
        actor=actor,
        action="shipment.cancel",
        entity="shipment",
        entity_id=shipment.id,
        office_id=delivery.office_id,
        before={"status": before.value},
        after={"status": shipment.status, "courier_confirmed": confirmed, "then": then},
        reason=reason,
    )
    if not confirmed:
        await items.open_exception(
            session,
            office_id=delivery.office_id,
            delivery_id=delivery.id,
            shipment_id=shipment.id,
            kind=ExceptionKind.CANCEL_AT_COURIER,
            detail=f"cancel order {shipment.client_reference} (waybill "
            f"{shipment.waybill or 'none'}) at {shipment.courier_code}: its API has no cancel",
            dedupe_key=f"cancel_at_courier:{shipment.id}",
            now=now,
        )
    await _off_open_manifest(session, shipment, actor, now)
    await items.resolve_exceptions(
        session,
        delivery_id=delivery.id,
        kinds=("stuck",),
        by=actor,
        resolution="shipment cancelled by the office",
        now=now,
    )
    outcome = await (_rebook if then == "rebook" else _to_counter)(session, delivery, actor, now)
    log.info(
        "shipment.cancelled",
        delivery_id=delivery.id,
        shipment_id=shipment.id,
        courier=shipment.courier_code,
        confirmed=confirmed,
        then=outcome,
    )
    return Cancelled(delivery.id, shipment.id, confirmed, outcome, delivery.state)


async def _rebook(session: AsyncSession, delivery: Delivery, actor: str, now: datetime) -> str:
    await lifecycle.requeue(
        session,
        delivery,
        actor=actor,
        now=now,
        reason="re-booking after the office cancelled the shipment",
    )
    return "queued"


async def _to_counter(session: AsyncSession, delivery: Delivery, actor: str, now: datetime) -> str:
    # the passport never left the office: "returned" is the state of a passport at the counter
    # (collected_at_counter closes it; reship can still send it out while time allows)
    lifecycle.move_delivery(
        session, delivery, DeliveryState.RETURNED, actor=actor, now=now, reason=AT_COUNTER_REASON
    )
    await items.queue_outbox(
        session,
        kind="applicant_collect_at_counter",
        delivery_id=delivery.id,
        payload={"delivery_id": delivery.id, **notices.deadline_facts(delivery)},
        dedupe_key=f"collect_at_counter:{delivery.id}",
        now=now,
    )
    return "collect_at_counter"
