"""Shipping labels (issue 11, Deliver 7): what goes on the envelope for the courier.

Neither courier gives us a label to print: Pos Indonesia's API has none, and the J&T order API
we use returns the waybill but no label document (docs/couriers.md), so both are rendered by us
(courier/web/printing.py) with the waybill as a Code 128 barcode, from the very order we sent
(:func:`courier.services.booking.build_order`: same rows in, same order out), so the label and
the courier's record cannot disagree.

A label carries what a courier needs and nothing more: sender, receiver name, phone and
address, weight, service, waybill and our reference. Never the application number, the date of
birth, the passport number, the tracking link or the seal (those identify the passport, not the
parcel).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters import registry
from adapters.base import Party
from core.clock import WIB
from core.status import Status
from courier.context import AppContext
from courier.db.models import Application, Delivery, Office, Shipment
from courier.services.booking import build_order
from courier.services.errors import Kind, ServiceError
from courier.services.staff import Caller


@dataclass(frozen=True, slots=True)
class Label:
    shipment_id: int
    courier_code: str
    courier_name: str
    service: str
    weight_kg: Decimal
    waybill: str
    reference: str
    sender: Party
    receiver: Party
    booked_at: datetime | None


async def _label(
    ctx: AppContext, session: AsyncSession, shipment: Shipment, delivery: Delivery
) -> Label:
    office = await session.get_one(Office, delivery.office_id)
    application = await session.get_one(Application, delivery.application_id)
    order = build_order(
        reference=shipment.client_reference,
        office=office,
        application=application,
        delivery=delivery,
        courier_code=shipment.courier_code,
        courier_settings=ctx.settings.couriers.get(shipment.courier_code, {}),
    )
    return Label(
        shipment_id=shipment.id,
        courier_code=shipment.courier_code,
        courier_name=registry.name(shipment.courier_code),
        service=order.service,
        weight_kg=order.weight_kg,
        waybill=shipment.waybill or "",
        reference=shipment.client_reference,
        sender=order.sender,
        receiver=order.receiver,
        booked_at=shipment.booked_at,
    )


async def label(ctx: AppContext, caller: Caller, delivery_id: int) -> Label:
    """The label of the delivery's booked shipment. 404 outside the caller's office; 409 when
    nothing is booked and waiting for pickup (no waybill to print)."""
    async with ctx.sessions() as session:
        delivery = await session.get(Delivery, delivery_id)
        if delivery is None or delivery.office_id != caller.office_id:
            raise ServiceError(Kind.NOT_FOUND, "unknown_delivery", "no such delivery")
        shipment = await session.scalar(
            select(Shipment).where(
                Shipment.delivery_id == delivery.id,
                Shipment.status == Status.BOOKED.value,
                Shipment.waybill.is_not(None),
            )
        )
        if shipment is None:
            raise ServiceError(
                Kind.CONFLICT,
                "not_booked",
                "this delivery has no booked shipment with a waybill: there is no label to print",
            )
        return await _label(ctx, session, shipment, delivery)


async def day_labels(ctx: AppContext, caller: Caller, day: date) -> tuple[Label, ...]:
    """Every label of the caller's office booked on ``day`` (WIB) and still waiting for
    pickup, in booking order: one print for the morning's packing."""
    start = datetime.combine(day, time(0), WIB)
    async with ctx.sessions() as session:
        rows = (
            await session.execute(
                select(Shipment, Delivery)
                .join(Delivery, Delivery.id == Shipment.delivery_id)
                .where(
                    Delivery.office_id == caller.office_id,
                    Shipment.status == Status.BOOKED.value,
                    Shipment.waybill.is_not(None),
                    Shipment.booked_at >= start,
                    Shipment.booked_at < start + timedelta(days=1),
                )
                .order_by(Shipment.booked_at, Shipment.id)
            )
        ).all()
        return tuple([await _label(ctx, session, s, d) for s, d in rows])
