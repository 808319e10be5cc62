"""Packing at the office (issue 11, Deliver 7): find the booked passport in hand by its
application number (typed, or scanned: a barcode scanner types the number and Enter), seal it
in its numbered envelope, print its label (:mod:`courier.services.labels`).

The seal is written where the pickup manifest keeps it (``manifest_items.seal_number``, unique
per office), so packing and the manifest never disagree: a passport sealed before the day's
manifest is opened joins the courier's open manifest (or opens it, with every other booked
passport of that courier, as ``POST /api/v1/manifests`` would). Once its manifest is handed over
the envelope is with the courier and its seal can no longer change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.status import Status
from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import (
    OPEN_SHIPMENT_STATUSES,
    Application,
    Delivery,
    Manifest,
    ManifestItem,
    Shipment,
)
from courier.domain import envelopes
from courier.services import audit, manifests
from courier.services.dispatch import Destination, destination
from courier.services.errors import Kind, ServiceError, invalid, unique_race
from courier.services.staff import Caller
from schemas import FieldError

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Packing:
    """What the packing desk shows for the passport in hand."""

    delivery_id: int
    application_no: str
    applicant_name: str  # to check against the passport in hand
    delivery_state: str
    shipment_id: int
    courier_code: str
    reference: str
    waybill: str | None
    destination: Destination
    seal_number: str | None
    manifest_id: int | None
    manifest_number: str | None
    manifest_state: str | None


def _not_found() -> ServiceError:
    return ServiceError(
        Kind.NOT_FOUND,
        "unknown_application",
        "no delivery of this office has this application number",
    )


async def _booked(session: AsyncSession, delivery: Delivery) -> Shipment:
    shipment: Shipment | None = await session.scalar(
        select(Shipment)
        .where(Shipment.delivery_id == delivery.id, Shipment.status.in_(OPEN_SHIPMENT_STATUSES))
        .with_for_update()
    )
    if shipment is None or shipment.status != Status.BOOKED.value:
        raise ServiceError(
            Kind.CONFLICT,
            "not_booked",
            "this passport has no booked shipment waiting for pickup"
            + (
                f" (the shipment is {shipment.status})"
                if shipment is not None
                else f" (the delivery is {delivery.state})"
            ),
        )
    return shipment


async def _view(session: AsyncSession, delivery: Delivery, shipment: Shipment) -> Packing:
    application = await session.get_one(Application, delivery.application_id)
    found = (
        await session.execute(
            select(ManifestItem, Manifest)
            .join(Manifest, Manifest.id == ManifestItem.manifest_id)
            .where(ManifestItem.shipment_id == shipment.id)
        )
    ).first()
    item, manifest = found if found is not None else (None, None)
    return Packing(
        delivery_id=delivery.id,
        application_no=application.application_no,
        applicant_name=application.applicant_name,
        delivery_state=delivery.state,
        shipment_id=shipment.id,
        courier_code=shipment.courier_code,
        reference=shipment.client_reference,
        waybill=shipment.waybill,
        destination=destination(delivery.destination_regency_code),
        seal_number=item.seal_number if item is not None else None,
        manifest_id=manifest.id if manifest is not None else None,
        manifest_number=manifest.number if manifest is not None else None,
        manifest_state=manifest.state if manifest is not None else None,
    )


async def find(ctx: AppContext, caller: Caller, application_no: str) -> Packing:
    """The booked passport of the caller's office with this application number (as scanned:
    surrounding spaces ignored, letters in any case). 404 when the office has no delivery for
    it; 409 (with the shipment's status) when it is not booked and waiting for pickup."""
    wanted = application_no.strip()
    async with ctx.sessions() as session:
        delivery = await session.scalar(
            select(Delivery)
            .join(Application, Application.id == Delivery.application_id)
            .where(
                Application.office_id == caller.office_id,
                Delivery.office_id == caller.office_id,
                Application.application_no.in_({wanted, wanted.upper()}),
            )
            .limit(1)
        )
        if delivery is None:
            raise _not_found()
        shipment = await _booked(session, delivery)
        return await _view(session, delivery, shipment)


SEAL_TAKEN = "this seal number was just recorded for another passport of the office"


async def seal(ctx: AppContext, caller: Caller, delivery_id: int, seal_number: str) -> Packing:
    """Record the envelope's seal number (normalised; unique per office: 422 naming
    ``$.seal_number`` when another passport has it). 409 when the passport is not booked or its
    manifest is already handed over."""
    number = envelopes.normalise_seal(seal_number)
    if number is None:
        raise invalid([FieldError("$.seal_number", envelopes.SEAL_MESSAGE)])
    now = ctx.clock.now()
    async with (
        unique_race("seal_number_taken", SEAL_TAKEN, "$.seal_number"),
        transaction(ctx.sessions) as session,
    ):
        delivery = await session.get(Delivery, delivery_id, with_for_update=True)
        if delivery is None or delivery.office_id != caller.office_id:
            raise ServiceError(Kind.NOT_FOUND, "unknown_delivery", "no such delivery")
        shipment = await _booked(session, delivery)
        holder = await session.scalar(
            select(ManifestItem.shipment_id).where(
                ManifestItem.office_id == caller.office_id,
                ManifestItem.seal_number == number,
                ManifestItem.shipment_id != shipment.id,
            )
        )
        if holder is not None:
            raise invalid(
                [FieldError("$.seal_number", f"seal {number} is already used at this office")],
                "the seal number is already used",
            )
        item = await _manifest_item(session, caller, shipment, now=now)
        manifest = await session.get_one(Manifest, item.manifest_id)
        if manifest.state != manifests.OPEN:
            raise ServiceError(
                Kind.CONFLICT,
                "manifest_closed",
                f"the passport was handed to the courier on manifest {manifest.number}: its "
                "seal can no longer change",
            )
        before = item.seal_number
        if before != number:
            item.seal_number = number
            item.sealed_at = now
            await session.flush()
            audit.record(
                session,
                at=now,
                actor=caller.actor,
                action="manifest.seal",
                entity="manifest",
                entity_id=manifest.id,
                office_id=caller.office_id,
                before={"seals": {str(shipment.id): before}},
                after={"seals": {str(shipment.id): number}},
                reason="sealed at packing",
            )
            log.info("packing.sealed", delivery_id=delivery.id, manifest_id=manifest.id)
        return await _view(session, delivery, shipment)


async def _manifest_item(
    session: AsyncSession, caller: Caller, shipment: Shipment, *, now: datetime
) -> ManifestItem:
    """The shipment's line on a manifest: the one it is on, else a new line on the courier's
    newest open manifest, else a new manifest of every waiting passport of that courier."""
    found: ManifestItem | None = await session.scalar(
        select(ManifestItem).where(ManifestItem.shipment_id == shipment.id)
    )
    if found is not None:
        return found
    open_one = await session.scalar(
        select(Manifest)
        .where(
            Manifest.office_id == caller.office_id,
            Manifest.courier_code == shipment.courier_code,
            Manifest.state == manifests.OPEN,
        )
        .order_by(Manifest.id.desc())
        .limit(1)
        .with_for_update()
    )
    if open_one is not None:
        item = ManifestItem(
            manifest_id=open_one.id, office_id=caller.office_id, shipment_id=shipment.id
        )
        session.add(item)
        await session.flush()
        audit.record(
            session,
            at=now,
            actor=caller.actor,
            action="manifest.item_added",
            entity="manifest",
            entity_id=open_one.id,
            office_id=caller.office_id,
            after={"shipment_id": shipment.id},
            reason="sealed at packing",
        )
        return item
    await manifests.open_in(
        session,
        office_id=caller.office_id,
        courier_code=shipment.courier_code,
        actor=caller.actor,
        now=now,
    )
    made: ManifestItem = (
        await session.execute(select(ManifestItem).where(ManifestItem.shipment_id == shipment.id))
    ).scalar_one()
    return made
