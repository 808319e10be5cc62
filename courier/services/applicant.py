"""What the applicant sees and does through their private tracking link (the JSON API and the
tracking page alike): where the passport is, and confirming it arrived.

The tracking token is the credential (only its sha256 is stored); a link can be forwarded, so
the views carry no name, phone, address or receiver.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.context import AppContext
from courier.db.models import Handover, Office, Shipment, TrackingEventRow
from courier.services import handover, hashing
from courier.services.optin import delivery_by_token_hash


@dataclass(frozen=True, slots=True)
class ShipmentStatus:
    courier_code: str
    waybill: str | None
    attempt_no: int
    status: str


@dataclass(frozen=True, slots=True)
class Event:
    occurred_at: datetime
    status: str | None  # None: a courier code we do not map
    location: str


@dataclass(frozen=True, slots=True)
class HandoverStatus:
    state: str
    verified: bool
    verified_at: datetime | None
    attempts_left: int  # wrong passport numbers the applicant may still type


@dataclass(frozen=True, slots=True)
class TrackView:
    state: str  # the delivery's
    collect_by: datetime | None
    shipment: ShipmentStatus | None  # the latest attempt
    events: tuple[Event, ...]  # of the latest attempt, oldest first
    handover: HandoverStatus | None  # the latest
    office_name: str
    office_phone: str | None

    @property
    def attempts_left(self) -> int:
        return self.handover.attempts_left if self.handover is not None else 0


def attempts_left(record: Handover | None) -> int:
    """Wrong passport numbers the applicant may still type before the confirmation locks
    (0 when no handover awaits the applicant)."""
    if record is None or record.state != handover.AWAITING:
        return 0
    return max(0, handover.MAX_CONFIRM_FAILURES - record.confirm_failures)


async def _latest(session: AsyncSession, model: Any, delivery_id: int) -> Any:
    result = await session.execute(
        select(model).where(model.delivery_id == delivery_id).order_by(model.id.desc()).limit(1)
    )
    return result.scalar_one_or_none()


async def track(ctx: AppContext, token: str) -> TrackView | None:
    """The delivery behind tracking ``token``, or None (one answer whatever the token was)."""
    async with ctx.sessions() as session:
        delivery = await delivery_by_token_hash(session, hashing.hash_token(token))
        if delivery is None:
            return None
        shipment: Shipment | None = await _latest(session, Shipment, delivery.id)
        record: Handover | None = await _latest(session, Handover, delivery.id)
        events: tuple[Event, ...] = ()
        if shipment is not None:
            rows = await session.scalars(
                select(TrackingEventRow)
                .where(TrackingEventRow.shipment_id == shipment.id)
                .order_by(TrackingEventRow.occurred_at, TrackingEventRow.id)
            )
            events = tuple(Event(row.occurred_at, row.status, row.location) for row in rows)
        office = await session.get(Office, delivery.office_id)
    sender = office.sender if office is not None and isinstance(office.sender, dict) else {}
    phone = sender.get("phone")
    return TrackView(
        state=delivery.state,
        collect_by=delivery.collect_by,
        shipment=None
        if shipment is None
        else ShipmentStatus(
            shipment.courier_code, shipment.waybill, shipment.attempt_no, shipment.status
        ),
        events=events,
        handover=None
        if record is None
        else HandoverStatus(
            record.state, record.verified, record.verified_at, attempts_left(record)
        ),
        office_name=office.name if office is not None else "",
        office_phone=phone if isinstance(phone, str) and phone else None,
    )


async def confirm_receipt(ctx: AppContext, token: str, passport_no: str) -> handover.Confirmation:
    """The applicant behind tracking ``token`` confirms possession with the passport number
    printed in it (:func:`courier.services.handover.confirm_possession` owns the rules and keeps
    the slow passport check outside its write transaction)."""
    return await handover.confirm_possession(
        ctx.sessions,
        hashing.hash_token(token),
        passport_no,
        ctx.clock.now(),
        pepper=ctx.settings.passport_pepper,
    )
