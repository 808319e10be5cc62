"""A dispatcher fixes what made a booking fail and books again (issue 11, Deliver 6).

* :func:`rebook` — a delivery whose booking the courier refused (``booking_rejected``), whose
  shipment was cancelled, or that needs a person for any other reason while no shipment is open,
  goes back to the booking queue: the worker books a new attempt under a new client reference
  (:func:`courier.services.lifecycle.requeue`, the one path for a new attempt). Every earlier
  attempt keeps its row, reference and status.
* :func:`correct_address` — the applicant's address as the dispatcher heard it on the phone,
  checked exactly as the opt-in checks it (regions dataset, postal code, eligibility), then
  optionally :func:`rebook` in the same transaction.
* :func:`correct_sender` — the office's sender block (what the courier prints as the shipper),
  checked against the office's courier limits as configuring an office is.

A booking left in doubt (the order may exist at the courier) is not re-booked here: only the
courier's portal can tell, so the dispatcher records its waybill or releases it
(:mod:`courier.services.stuck_booking`), which queues a new attempt itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.status import Status
from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import OPEN_SHIPMENT_STATUSES, Application, Delivery, Office, Shipment
from courier.domain.eligibility import check_eligibility
from courier.domain.exception_kinds import ExceptionKind
from courier.domain.states import DeliveryState
from courier.services import audit, items, lifecycle, optin, staff
from courier.services.errors import Kind, ServiceError, invalid
from courier.services.staff import Caller
from schemas import FieldError

log = structlog.get_logger()

# where a delivery may be re-booked from: a person must act, or it waits at the counter
_REBOOKABLE = (DeliveryState.NEEDS_ATTENTION.value, DeliveryState.RETURNED.value)
# where its address may still be corrected: not yet with a courier, or back from one
_CORRECTABLE = (
    DeliveryState.REQUESTED.value,
    DeliveryState.QUEUED.value,
    DeliveryState.NEEDS_ATTENTION.value,
    DeliveryState.RETURNED.value,
)
#: the items a new attempt answers
REBOOK_ITEM_KINDS: tuple[str, ...] = tuple(
    k.value
    for k in (
        ExceptionKind.BOOKING_REJECTED,
        ExceptionKind.SHIPMENT_CANCELLED,
        ExceptionKind.RETURNED,
        ExceptionKind.ADDRESS_INCOMPLETE,
        ExceptionKind.ROUTING,
        ExceptionKind.COURIER_AUTH,
    )
)


@dataclass(frozen=True, slots=True)
class Rebooked:
    delivery_id: int
    delivery_state: str
    previous_attempts: int  # their rows stay, each with its own reference


@dataclass(frozen=True, slots=True)
class AddressCorrected:
    delivery_id: int
    destination_regency_code: str
    delivery_state: str
    rebooked: bool


@dataclass(frozen=True, slots=True)
class SenderCorrected:
    office_code: str
    changed: bool


async def _delivery(session: AsyncSession, caller: Caller, delivery_id: int) -> Delivery:
    delivery = await session.get(Delivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.office_id != caller.office_id:
        raise ServiceError(Kind.NOT_FOUND, "unknown_delivery", "no such delivery")
    return delivery


async def _open_shipment(session: AsyncSession, delivery_id: int) -> Shipment | None:
    found: Shipment | None = await session.scalar(
        select(Shipment).where(
            Shipment.delivery_id == delivery_id, Shipment.status.in_(OPEN_SHIPMENT_STATUSES)
        )
    )
    return found


def _refuse_open(shipment: Shipment) -> ServiceError:
    if shipment.status == Status.BOOKING.value:
        return ServiceError(
            Kind.CONFLICT,
            "booking_in_doubt",
            "the booking of this delivery has no answer from the courier: look its reference "
            f"({shipment.client_reference}) up in the courier's portal, then record its waybill "
            "or release it (/booking/waybill, /booking/release)",
        )
    if shipment.status == Status.BOOKED.value:
        return ServiceError(
            Kind.CONFLICT,
            "shipment_booked",
            "the delivery has a booked shipment: cancel it first (/cancel, then rebook)",
        )
    return ServiceError(
        Kind.CONFLICT,
        "shipment_with_courier",
        f"the courier holds the parcel (shipment {shipment.status}): wait for the delivery "
        "or the return",
    )


async def _rebook(
    session: AsyncSession, delivery: Delivery, *, actor: str, reason: str, now: datetime
) -> int:
    """The checks and the move; the number of earlier attempts."""
    open_shipment = await _open_shipment(session, delivery.id)
    if open_shipment is not None:
        raise _refuse_open(open_shipment)
    if delivery.state not in _REBOOKABLE:
        raise ServiceError(
            Kind.CONFLICT,
            "not_rebookable",
            f"a delivery in state {delivery.state} cannot be booked again"
            + (": it is already waiting for booking" if delivery.state == "queued" else ""),
        )
    if delivery.collect_by is not None and now >= delivery.collect_by:
        raise ServiceError(
            Kind.CONFLICT,
            "deadline_passed",
            "the passport's collection deadline has passed: it can no longer be sent",
        )
    attempts = list(
        await session.scalars(select(Shipment.id).where(Shipment.delivery_id == delivery.id))
    )
    await lifecycle.requeue(
        session, delivery, actor=actor, now=now, reason=f"re-booking by staff: {reason}"
    )
    audit.record(
        session,
        at=now,
        actor=actor,
        action="delivery.rebook",
        entity="delivery",
        entity_id=delivery.id,
        office_id=delivery.office_id,
        after={"state": delivery.state, "previous_attempts": len(attempts)},
        reason=reason,
    )
    await items.resolve_exceptions(
        session,
        delivery_id=delivery.id,
        kinds=REBOOK_ITEM_KINDS,
        by=actor,
        resolution=f"re-booked by staff: {reason}",
        now=now,
    )
    return len(attempts)


async def rebook(ctx: AppContext, caller: Caller, delivery_id: int, *, reason: str) -> Rebooked:
    """Queue the delivery for a new booking attempt (a new reference). Not found outside the
    caller's office; conflict, with the next step in words, while a shipment is open (booked:
    cancel first; in doubt: the portal actions; with the courier: wait) or when the delivery
    is not waiting for a person."""
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        delivery = await _delivery(session, caller, delivery_id)
        previous = await _rebook(session, delivery, actor=caller.actor, reason=reason, now=now)
        log.info("delivery.rebooked", delivery_id=delivery.id, previous_attempts=previous)
        return Rebooked(delivery.id, delivery.state, previous)


async def correct_address(
    ctx: AppContext,
    caller: Caller,
    delivery_id: int,
    *,
    address: Mapping[str, Any],
    reason: str,
    rebook: bool,
) -> AddressCorrected:
    """Replace the delivery's address (checked as the opt-in checks it: 422 naming
    ``$.address.<field>``; an ineligible destination names ``$.address.regency_code``), then
    re-book when asked. Conflict while a shipment is open (the courier has the old address)."""
    normalised, errors = optin.normalise_address(address)
    if errors or normalised is None:
        raise invalid(errors, "the address is not valid")
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        delivery = await _delivery(session, caller, delivery_id)
        open_shipment = await _open_shipment(session, delivery.id)
        if open_shipment is not None:
            raise _refuse_open(open_shipment)
        if delivery.state not in _CORRECTABLE:
            raise ServiceError(
                Kind.CONFLICT,
                "not_correctable",
                f"a delivery in state {delivery.state} no longer takes an address",
            )
        office = await session.get_one(Office, delivery.office_id)
        application = await session.get_one(Application, delivery.application_id)
        verdict = check_eligibility(
            home_regency_codes=office.home_regency_codes,
            destination_regency_code=normalised["regency_code"],
            priority_kind=application.priority_kind,
        )
        if not verdict.ok:
            raise invalid(
                [
                    FieldError("$.address.regency_code", verdict.message_id),
                    FieldError("$.address.regency_code", verdict.message_en),
                ],
                "the destination is not eligible for home delivery",
            )
        before_code = delivery.destination_regency_code
        delivery.address = normalised
        delivery.destination_regency_code = normalised["regency_code"]
        delivery.updated_at = now
        audit.record(  # the address itself stays out of the log: personal data
            session,
            at=now,
            actor=caller.actor,
            action="delivery.address_corrected",
            entity="delivery",
            entity_id=delivery.id,
            office_id=delivery.office_id,
            before={"destination_regency_code": before_code, "address": "[old]"},
            after={"destination_regency_code": normalised["regency_code"], "address": "[new]"},
            reason=reason,
        )
        await items.resolve_exceptions(
            session,
            delivery_id=delivery.id,
            kinds=(ExceptionKind.ADDRESS_INCOMPLETE.value,),
            by=caller.actor,
            resolution="address corrected by staff",
            now=now,
        )
        if rebook:
            await _rebook(session, delivery, actor=caller.actor, reason=reason, now=now)
        return AddressCorrected(delivery.id, normalised["regency_code"], delivery.state, rebook)


async def correct_sender(
    ctx: AppContext, caller: Caller, *, sender: Mapping[str, Any], reason: str
) -> SenderCorrected:
    """Replace the caller's office's sender block, checked against its courier's limits as
    configuring the office is (422 naming ``$.sender.<field>``). Deliveries refused for it are
    then re-booked one by one (:func:`rebook`)."""
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        office = await session.get_one(Office, caller.office_id, with_for_update=True)
        spec = {
            "code": office.code,
            "name": office.name,
            "home_regency_codes": list(office.home_regency_codes),
            "courier": office.courier_code,
            "sender": dict(sender),
        }
        errors = staff.office_problems(spec, sender_required=True)
        if errors:
            raise invalid(errors, "the sender block is not valid")
        before = dict(office.sender or {})
        changed = before != dict(sender)
        if changed:
            office.sender = dict(sender)
            audit.record(
                session,
                at=now,
                actor=caller.actor,
                action="office.sender_corrected",
                entity="office",
                entity_id=office.id,
                office_id=office.id,
                before={"sender": before},  # the office's own data, not an applicant's
                after={"sender": dict(sender)},
                reason=reason,
            )
        return SenderCorrected(office.code, changed)
