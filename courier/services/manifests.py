"""The day's pickup manifest (DESIGN §2 step 5): the office → courier handover of passports, each
sealed in a numbered tamper-evident envelope, signed by both sides.

1. :func:`open_manifest` lists every booked shipment of one courier at the office that the
   courier has not picked up yet and that is on no manifest (a shipment is on at most one:
   ``manifest_items.shipment_id`` is unique).
2. :func:`record_seals` notes each envelope's seal number (unique per office).
3. :func:`hand_over` needs a seal on every item; it marks the manifest handed over with both
   signatures (the courier agent's as the sha256 of its image; the office's as the staff user)
   and appends one custody event per delivery (holder: the courier), audited, in the caller's
   transaction. A pickup scan arriving later finds the courier already holding the passport and
   adds nothing (:func:`courier.services.lifecycle.record_custody` skips the same hand).

Each use case takes the :class:`~courier.context.AppContext` and the staff :class:`Caller`, runs
in one transaction and returns a frozen :class:`ManifestView`; every query is scoped to the
caller's office and finds nothing outside it (invariant 5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import WIB
from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import Application, Delivery, Manifest, ManifestItem, Office, Shipment
from courier.domain import envelopes
from courier.services import artefacts, audit, lifecycle
from courier.services.dispatch import Destination, acting_person, destination
from courier.services.errors import Kind, ServiceError, invalid, unique_race
from courier.services.staff import Caller
from schemas import FieldError

log = structlog.get_logger()

OPEN = "open"
HANDED_OVER = "handed_over"
# statuses a shipment on a manifest may have at handover: still waiting for the courier, or
# already scanned by it (the scan's custody event then makes the manifest's a duplicate)
_HANDABLE = ("booked", "picked_up")


@dataclass(frozen=True, slots=True)
class LineView:
    shipment_id: int
    delivery_id: int
    reference: str
    waybill: str | None
    status: str
    seal_number: str | None
    sealed_at: datetime | None
    destination: Destination


@dataclass(frozen=True, slots=True)
class ManifestView:
    """The printed manifest: no applicant names, phones or addresses (it goes to the courier)."""

    id: int
    number: str
    courier_code: str
    state: str
    created_at: datetime
    handed_over_at: datetime | None
    courier_agent_name: str | None
    courier_signature_sha256: str | None
    office_signer_id: int | None
    lines: tuple[LineView, ...]


@dataclass(frozen=True, slots=True)
class Seal:
    shipment_id: int
    seal_number: str


def manifest_prefix(office_code: str, courier_code: str, now: datetime) -> str:
    """``BLT-20261130-JNT-``: the office, the WIB day, the courier; a sequence number follows."""
    return f"{office_code}-{now.astimezone(WIB):%Y%m%d}-{courier_code.upper()}-"


def _unknown_manifest() -> ServiceError:
    return ServiceError(Kind.NOT_FOUND, "unknown_manifest", "no such manifest")


async def _office_locked(session: AsyncSession, office_id: int) -> Office:
    # one manifest number at a time per office: the sequence is read, then written
    office: Office | None = (
        await session.execute(select(Office).where(Office.id == office_id).with_for_update())
    ).scalar_one_or_none()
    if office is None:
        raise _unknown_manifest()
    return office


async def _manifest_of_office(
    session: AsyncSession, office_id: int, manifest_id: int, *, lock: bool
) -> Manifest:
    query = select(Manifest).where(Manifest.id == manifest_id, Manifest.office_id == office_id)
    if lock:
        query = query.with_for_update()
    manifest: Manifest | None = (await session.execute(query)).scalar_one_or_none()
    if manifest is None:
        raise _unknown_manifest()
    return manifest


async def open_in(
    session: AsyncSession, *, office_id: int, courier_code: str, actor: str, now: datetime
) -> Manifest:
    """A new open manifest of every waiting shipment of ``courier_code`` at the office; a 409
    :class:`ServiceError` when there is none."""
    office = await _office_locked(session, office_id)
    on_a_manifest = select(ManifestItem.shipment_id)
    waiting = list(
        await session.scalars(
            select(Shipment)
            .join(Delivery, Delivery.id == Shipment.delivery_id)
            .where(
                Delivery.office_id == office_id,
                Shipment.courier_code == courier_code,
                Shipment.status == "booked",
                Shipment.id.not_in(on_a_manifest),
            )
            .order_by(Shipment.id)
            .with_for_update(of=Shipment)
        )
    )
    if not waiting:
        raise ServiceError(
            Kind.CONFLICT,
            "nothing_to_pick_up",
            "no booked shipment of this courier waits for pickup outside a manifest",
        )
    prefix = manifest_prefix(office.code, courier_code, now)
    today = await session.scalar(
        select(func.count())
        .select_from(Manifest)
        .where(Manifest.office_id == office_id, Manifest.number.startswith(prefix))
    )
    manifest = Manifest(
        office_id=office_id,
        courier_code=courier_code,
        number=f"{prefix}{int(today or 0) + 1}",
        state=OPEN,
        created_at=now,
        created_by=actor,
    )
    session.add(manifest)
    await session.flush()
    for shipment in waiting:
        session.add(
            ManifestItem(manifest_id=manifest.id, office_id=office_id, shipment_id=shipment.id)
        )
    await session.flush()
    audit.record(
        session,
        at=now,
        actor=actor,
        action="manifest.open",
        entity="manifest",
        entity_id=manifest.id,
        office_id=office_id,
        after={"number": manifest.number, "courier": courier_code, "items": len(waiting)},
    )
    log.info("manifest_opened", manifest_id=manifest.id, items=len(waiting))
    return manifest


async def _view(session: AsyncSession, *, office_id: int, manifest_id: int) -> ManifestView:
    """The manifest with its lines (shipment, seal, destination); 404 outside the office."""
    m = await _manifest_of_office(session, office_id, manifest_id, lock=False)
    rows = await session.execute(
        select(ManifestItem, Shipment, Delivery.destination_regency_code)
        .join(Shipment, Shipment.id == ManifestItem.shipment_id)
        .join(Delivery, Delivery.id == Shipment.delivery_id)
        .where(ManifestItem.manifest_id == m.id)
        .order_by(ManifestItem.id)
    )
    return ManifestView(
        id=m.id,
        number=m.number,
        courier_code=m.courier_code,
        state=m.state,
        created_at=m.created_at,
        handed_over_at=m.handed_over_at,
        courier_agent_name=m.courier_agent_name,
        courier_signature_sha256=m.courier_agent_signature_sha256,
        office_signer_id=m.office_signer_id,
        lines=tuple(
            LineView(
                shipment_id=ship.id,
                delivery_id=ship.delivery_id,
                reference=ship.client_reference,
                waybill=ship.waybill,
                status=ship.status,
                seal_number=item.seal_number,
                sealed_at=item.sealed_at,
                destination=destination(code),
            )
            for item, ship, code in rows
        ),
    )


async def _record_seals(
    session: AsyncSession,
    *,
    office_id: int,
    manifest_id: int,
    seals: Sequence[Seal],
    actor: str,
    now: datetime,
) -> Manifest:
    """Note each envelope's seal number. Field errors (``$.items[i].…``) for a shipment not on
    this manifest, one named twice, or a seal number already used at the office; 409 once the
    manifest is handed over (the envelopes are with the courier)."""
    manifest = await _manifest_of_office(session, office_id, manifest_id, lock=True)
    if manifest.state != OPEN:
        raise ServiceError(Kind.CONFLICT, "manifest_closed", "the manifest is already handed over")
    items = {
        i.shipment_id: i
        for i in await session.scalars(
            select(ManifestItem).where(ManifestItem.manifest_id == manifest.id)
        )
    }
    bad = [
        FieldError(f"$.items[{n}].seal_number", envelopes.SEAL_MESSAGE)
        for n, s in enumerate(seals)
        if envelopes.normalise_seal(s.seal_number) is None
    ]
    if bad:
        raise invalid(bad, "some seals cannot be recorded")
    # one envelope, one number however it was typed or scanned: SEAL-0001, seal 0001, SEAL0001
    seals = [Seal(s.shipment_id, envelopes.normalise_seal(s.seal_number) or "") for s in seals]
    numbers = [s.seal_number for s in seals]
    used = {
        str(n): int(sid)
        for n, sid in await session.execute(
            select(ManifestItem.seal_number, ManifestItem.shipment_id).where(
                ManifestItem.office_id == office_id, ManifestItem.seal_number.in_(numbers)
            )
        )
    }
    # an envelope re-sealed in this same request frees its old number (two numbers swapped)
    renamed = {s.shipment_id for s in seals}
    errors: list[FieldError] = []
    seen_shipments: set[int] = set()
    seen_numbers: set[str] = set()
    for n, seal in enumerate(seals):
        at = f"$.items[{n}]"
        if seal.shipment_id not in items:
            errors.append(FieldError(f"{at}.shipment_id", "not on this manifest"))
        elif seal.shipment_id in seen_shipments:
            errors.append(FieldError(f"{at}.shipment_id", "named more than once"))
        seen_shipments.add(seal.shipment_id)
        holder = used.get(seal.seal_number)
        if seal.seal_number in seen_numbers:
            errors.append(FieldError(f"{at}.seal_number", "named more than once"))
        elif holder is not None and holder != seal.shipment_id and holder not in renamed:
            errors.append(FieldError(f"{at}.seal_number", "already used at this office"))
        seen_numbers.add(seal.seal_number)
    if errors:
        raise invalid(errors, "some seals cannot be recorded")
    # free the numbers being moved first, so a swap between two items never collides mid-way
    changed = [s for s in seals if items[s.shipment_id].seal_number != s.seal_number]
    before = {s.shipment_id: items[s.shipment_id].seal_number for s in changed}
    for seal in changed:
        items[seal.shipment_id].seal_number = None
    await session.flush()
    for seal in changed:
        item = items[seal.shipment_id]
        item.seal_number = seal.seal_number
        item.sealed_at = now
    await session.flush()
    if changed:
        audit.record(
            session,
            at=now,
            actor=actor,
            action="manifest.seal",
            entity="manifest",
            entity_id=manifest.id,
            office_id=office_id,
            before={"seals": {str(k): v for k, v in before.items()}},
            after={"seals": {str(s.shipment_id): s.seal_number for s in changed}},
        )
    return manifest


async def _hand_over(
    session: AsyncSession,
    *,
    office_id: int,
    manifest_id: int,
    courier_agent_name: str,
    signature_sha256: str,
    office_signer_id: int,
    actor: str,
    now: datetime,
) -> Manifest:
    """Both sides sign: the manifest is handed over and each passport is in the courier's
    custody. 409 when it already was, when an item has no seal (naming the shipments) or when a
    shipment on it can no longer be handed over (cancelled, failed)."""
    manifest = await _manifest_of_office(session, office_id, manifest_id, lock=True)
    if manifest.state != OPEN:
        raise ServiceError(Kind.CONFLICT, "manifest_closed", "the manifest is already handed over")
    rows = list(
        await session.execute(
            select(ManifestItem, Shipment)
            .join(Shipment, Shipment.id == ManifestItem.shipment_id)
            .where(ManifestItem.manifest_id == manifest.id)
            .order_by(ManifestItem.id)
            .with_for_update(of=Shipment)
        )
    )
    unsealed = [ship.id for item, ship in rows if not item.seal_number]
    if unsealed:
        raise ServiceError(
            Kind.CONFLICT,
            "unsealed_items",
            "every passport must be sealed before handover; shipments without a seal: "
            + ", ".join(str(s) for s in unsealed),
            [FieldError("$", f"shipment {s} has no seal") for s in unsealed],
        )
    gone = [ship.id for _, ship in rows if ship.status not in _HANDABLE]
    if gone:
        raise ServiceError(
            Kind.CONFLICT,
            "shipments_not_waiting",
            "some shipments on the manifest can no longer be handed over: "
            + ", ".join(str(s) for s in gone),
            [FieldError("$", f"shipment {s} is not waiting for pickup") for s in gone],
        )
    manifest.state = HANDED_OVER
    manifest.handed_over_at = now
    manifest.courier_agent_name = courier_agent_name
    manifest.courier_agent_signature_sha256 = signature_sha256
    manifest.office_signer_id = office_signer_id
    recorded = 0
    for item, ship in rows:
        event = await lifecycle.record_custody(
            session,
            delivery_id=ship.delivery_id,
            shipment_id=ship.id,
            holder="courier",
            holder_ref=ship.courier_code,
            occurred_at=now,
            evidence={
                "from": "office",  # the chain's first hand: the office held it since printing
                "manifest_id": manifest.id,
                "manifest_number": manifest.number,
                "seal_number": item.seal_number,
                "signature_sha256": signature_sha256,
                "office_signer_id": office_signer_id,
            },
            recorded_by=actor,
            now=now,
        )
        recorded += event is not None
    audit.record(
        session,
        at=now,
        actor=actor,
        action="manifest.handover",
        entity="manifest",
        entity_id=manifest.id,
        office_id=office_id,
        before={"state": OPEN},
        after={
            "state": HANDED_OVER,
            "signature_sha256": signature_sha256,
            "office_signer_id": office_signer_id,
            "items": len(rows),
        },
    )
    await session.flush()
    log.info("manifest_handed_over", manifest_id=manifest.id, items=len(rows), custody=recorded)
    return manifest


# --------------------------------------------------------------------------------------------
# Use cases


async def open_manifest(ctx: AppContext, caller: Caller, *, courier_code: str) -> ManifestView:
    async with transaction(ctx.sessions) as session:
        manifest = await open_in(
            session,
            office_id=caller.office_id,
            courier_code=courier_code,
            actor=caller.actor,
            now=ctx.clock.now(),
        )
        return await _view(session, office_id=caller.office_id, manifest_id=manifest.id)


async def manifest(ctx: AppContext, caller: Caller, manifest_id: int) -> ManifestView:
    async with ctx.sessions() as session:
        return await _view(session, office_id=caller.office_id, manifest_id=manifest_id)


SEAL_TAKEN = "a seal number in this request was just recorded on another manifest of the office"


async def record_seals(
    ctx: AppContext, caller: Caller, manifest_id: int, seals: Sequence[Seal]
) -> ManifestView:
    """Seal numbers are checked, then written; two manifests sealed with the same number at the
    same moment both pass the check and the UNIQUE index (office, seal number) refuses the
    second write: that one is a 409, never a 500."""
    async with (
        unique_race("seal_number_taken", SEAL_TAKEN, "$.items"),
        transaction(ctx.sessions) as session,
    ):
        await _record_seals(
            session,
            office_id=caller.office_id,
            manifest_id=manifest_id,
            seals=seals,
            actor=caller.actor,
            now=ctx.clock.now(),
        )
        return await _view(session, office_id=caller.office_id, manifest_id=manifest_id)


async def hand_over(
    ctx: AppContext,
    caller: Caller,
    manifest_id: int,
    *,
    courier_agent_name: str,
    signature_png: bytes,
) -> ManifestView:
    """Both sides sign. The courier agent's signature image is kept in the proof-of-delivery
    store first, outside the transaction (writing it is slow and need not hold a lock)."""
    now = ctx.clock.now()
    async with ctx.sessions() as session:
        # not found before anything is written for another office's manifest
        await _manifest_of_office(session, caller.office_id, manifest_id, lock=False)
    # content-addressed and idempotent: kept even if the handover is then refused, harmlessly
    digest = await artefacts.store(ctx).put(signature_png)
    async with transaction(ctx.sessions) as session:
        signer = await acting_person(
            session,
            caller,
            code="signer_required",
            message="the office signs a manifest through a person: use an API token issued "
            "to an active staff user of this office",
        )
        await _hand_over(
            session,
            office_id=caller.office_id,
            manifest_id=manifest_id,
            courier_agent_name=courier_agent_name,
            signature_sha256=digest,
            office_signer_id=signer,
            actor=caller.actor,
            now=now,
        )
        return await _view(session, office_id=caller.office_id, manifest_id=manifest_id)


# --------------------------------------------------------------------------------------------
# The printed sheet and taking a passport off


@dataclass(frozen=True, slots=True)
class SheetLine:
    application_no: str
    masked_name: str  # envelopes.mask_name: the agent matches envelopes, nobody learns names
    reference: str
    waybill: str | None
    seal_number: str | None
    destination: Destination


@dataclass(frozen=True, slots=True)
class Sheet:
    """The manifest as printed for both signatures (a PDF): who picks up what, when."""

    id: int
    number: str
    office_code: str
    office_name: str
    courier_code: str
    state: str
    created_at: datetime
    pickup_slot: str  # "HH:MM" WIB: the office's first slot at or after the manifest opened
    handed_over_at: datetime | None
    courier_agent_name: str | None
    lines: tuple[SheetLine, ...]


def pickup_slot(office: Office, opened: datetime) -> str:
    slots = lifecycle.pickup_slots(office)
    local = opened.astimezone(WIB).time()
    chosen = next((s for s in slots if s >= local), slots[-1])
    return f"{chosen:%H:%M}"


async def sheet(ctx: AppContext, caller: Caller, manifest_id: int) -> Sheet:
    """The printable manifest of the caller's office (404 outside it): application numbers,
    masked names, seals, waybills and destination regencies; no phone or address."""
    async with ctx.sessions() as session:
        m = await _manifest_of_office(session, caller.office_id, manifest_id, lock=False)
        office = await session.get_one(Office, m.office_id)
        rows = await session.execute(
            select(
                ManifestItem.seal_number,
                Shipment.client_reference,
                Shipment.waybill,
                Delivery.destination_regency_code,
                Application.application_no,
                Application.applicant_name,
            )
            .join(Shipment, Shipment.id == ManifestItem.shipment_id)
            .join(Delivery, Delivery.id == Shipment.delivery_id)
            .join(Application, Application.id == Delivery.application_id)
            .where(ManifestItem.manifest_id == m.id)
            .order_by(ManifestItem.id)
        )
        return Sheet(
            id=m.id,
            number=m.number,
            office_code=office.code,
            office_name=office.name,
            courier_code=m.courier_code,
            state=m.state,
            created_at=m.created_at,
            pickup_slot=pickup_slot(office, m.created_at),
            handed_over_at=m.handed_over_at,
            courier_agent_name=m.courier_agent_name,
            lines=tuple(
                SheetLine(
                    application_no=no,
                    masked_name=envelopes.mask_name(name),
                    reference=ref,
                    waybill=waybill,
                    seal_number=seal,
                    destination=destination(code),
                )
                for seal, ref, waybill, code, no, name in rows
            ),
        )


async def remove_item(
    ctx: AppContext, caller: Caller, manifest_id: int, delivery_id: int, *, reason: str
) -> ManifestView:
    """Take a delivery's passport off an open manifest (it is not ready, the envelope is torn,
    the courier will not take it today); the shipment stays booked and a later manifest lists
    it again. Audited with its seal. 404 for another office's manifest or delivery; 409 when
    the delivery's passport is not on this manifest, or once the manifest is handed over."""
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        manifest = await _manifest_of_office(session, caller.office_id, manifest_id, lock=True)
        found = (
            await session.execute(
                select(ManifestItem, Shipment)
                .join(Shipment, Shipment.id == ManifestItem.shipment_id)
                .where(ManifestItem.manifest_id == manifest.id, Shipment.delivery_id == delivery_id)
            )
        ).first()
        if found is None:
            delivery = await session.get(Delivery, delivery_id)
            if delivery is None or delivery.office_id != caller.office_id:
                raise ServiceError(Kind.NOT_FOUND, "unknown_delivery", "no such delivery")
            raise ServiceError(
                Kind.CONFLICT, "not_on_manifest", "this delivery's passport is not on this manifest"
            )
        if manifest.state != OPEN:
            raise ServiceError(
                Kind.CONFLICT,
                "manifest_closed",
                "the manifest is already handed over: the courier holds its passports",
            )
        item, shipment = found
        audit.record(
            session,
            at=now,
            actor=caller.actor,
            action="manifest.item_removed",
            entity="manifest",
            entity_id=manifest.id,
            office_id=caller.office_id,
            before={"shipment_id": shipment.id, "seal_number": item.seal_number},
            reason=reason,
        )
        await session.delete(item)
        await session.flush()
        return await _view(session, office_id=caller.office_id, manifest_id=manifest.id)
