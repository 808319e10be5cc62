"""The dispatcher's use cases: the exceptions queue, one delivery in full, and the actions on
it (review a handover, re-ship a returned passport, collected at the counter).

Each use case takes the :class:`~courier.context.AppContext` and the :class:`Caller`, runs in
one unit of work and returns frozen views. The rules of each action stay with the step that owns
them (:func:`courier.services.handover.review`, :func:`courier.services.watch.reship`, …), which
audit and record custody. Every query takes the caller's office and finds nothing outside it
(invariant 5: another office's delivery is "not found", exactly like one that does not exist).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import (
    ApiToken,
    Application,
    CustodyEvent,
    Delivery,
    ExceptionItem,
    Handover,
    Proof,
    Shipment,
    StaffUser,
    TrackingEventRow,
)
from courier.domain import envelopes, regions
from courier.domain.exception_kinds import NEXT_STEPS, ExceptionKind
from courier.domain.states import DeliveryState
from courier.services import handover, lifecycle, stuck_booking, watch
from courier.services.errors import Kind, ServiceError, invalid
from courier.services.handover import AWAITING
from courier.services.staff import Caller
from schemas import FieldError

# Open items that ask a dispatcher to review a handover still awaiting the applicant (the
# applicant never confirmed, or locked the confirmation with wrong numbers).
REVIEW_ITEM_KINDS = ("handover_locked", "unconfirmed")


# --------------------------------------------------------------------------------------------
# Views: what leaves the use cases; never a passport hash or a tracking token hash


@dataclass(frozen=True, slots=True)
class Destination:
    regency_code: str
    regency_name: str | None  # None for a code the regions dataset does not know
    province_name: str | None


def destination(code: str) -> Destination:
    regency = regions.lookup_regency(code)
    return Destination(
        code,
        regency.name if regency is not None else None,
        regency.province.name if regency is not None else None,
    )


_KINDS = frozenset(k.value for k in ExceptionKind)


@dataclass(frozen=True, slots=True)
class ItemView:
    """One exceptions-queue item; ``delivery_state`` and ``application_no`` only in the queue."""

    id: int
    kind: str
    detail: str
    next_step: str  # Bahasa Indonesia
    next_step_en: str
    delivery_id: int | None
    shipment_id: int | None
    opened_at: datetime
    resolved_at: datetime | None
    resolution: str | None
    delivery_state: str | None = None  # None for an item that is not about one delivery
    application_no: str | None = None


def _item_view(
    item: ExceptionItem, delivery_state: str | None = None, application_no: str | None = None
) -> ItemView:
    step = NEXT_STEPS.get(ExceptionKind(item.kind)) if item.kind in _KINDS else None
    return ItemView(
        id=item.id,
        kind=item.kind,
        detail=item.detail,
        next_step=step.id if step else item.next_step,
        next_step_en=step.en if step else item.next_step,
        delivery_id=item.delivery_id,
        shipment_id=item.shipment_id,
        opened_at=item.opened_at,
        resolved_at=item.resolved_at,
        resolution=item.resolution,
        delivery_state=delivery_state,
        application_no=application_no,
    )


@dataclass(frozen=True, slots=True)
class QueuePage:
    items: tuple[ItemView, ...]
    next_cursor: int | None  # the last row's id when more rows follow


@dataclass(frozen=True, slots=True)
class ShipmentView:
    id: int
    attempt_no: int
    courier_code: str
    client_reference: str
    waybill: str | None
    status: str
    status_reason: str | None
    booked_at: datetime | None


@dataclass(frozen=True, slots=True)
class EventView:
    shipment_id: int
    occurred_at: datetime
    status: str | None
    raw_code: str
    raw_text: str
    location: str
    source: str
    applied: bool
    sources: tuple[str, ...] = ()  # every source that reported this scan, the first first


@dataclass(frozen=True, slots=True)
class CustodyView:
    holder: str
    holder_ref: str
    shipment_id: int | None
    occurred_at: datetime
    recorded_by: str
    evidence: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ProofView:
    receiver_name: str
    relation: str
    relation_kind: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class HandoverView:
    id: int
    state: str
    method: str
    verified: bool
    verified_at: datetime | None
    confirm_failures: int
    created_at: datetime
    proof: ProofView | None


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: int
    application_no: str
    state: str
    reason: str | None
    collect_by: datetime | None
    handed_over_at: datetime | None
    created_at: datetime
    updated_at: datetime
    applicant_name: str  # the dispatcher calls the applicant: name and phone, never the address
    phone: str
    destination: Destination
    shipments: tuple[ShipmentView, ...]
    events: tuple[EventView, ...]
    custody: tuple[CustodyView, ...]
    handover: HandoverView | None
    open_items: tuple[ItemView, ...]


@dataclass(frozen=True, slots=True)
class ReviewedHandover:
    id: int
    delivery_id: int
    state: str
    method: str
    verified: bool
    verified_at: datetime | None
    delivery_state: str


@dataclass(frozen=True, slots=True)
class Collected:
    delivery_id: int
    state: str


@dataclass(frozen=True, slots=True)
class ReturnedToOffice:
    delivery_id: int
    shipment_id: int
    delivery_state: str
    seal_number: str | None = None  # as read on the envelope, normalised
    seal_matches: bool | None = None  # None: no seal read, or none recorded on a manifest


@dataclass(frozen=True, slots=True)
class IdentityShown:
    """The identity document the counter checked before handing the passport over."""

    id_type: str  # envelopes.ID_TYPES
    id_number: str  # as typed; only its masked form is kept


# --------------------------------------------------------------------------------------------
# Queries


async def exceptions_queue(
    ctx: AppContext,
    caller: Caller,
    *,
    open_only: bool,
    kind: str | None,
    limit: int,
    before_id: int | None,
) -> QueuePage:
    """The office's items, newest first, ``limit`` at a time; ``before_id`` is the previous
    page's cursor (keyset pagination on the id: stable while new items arrive).
    ``open_only`` False lists the resolved items instead (the queue's history)."""
    query = (
        select(ExceptionItem, Delivery.state, Application.application_no)
        .outerjoin(Delivery, Delivery.id == ExceptionItem.delivery_id)
        .outerjoin(Application, Application.id == Delivery.application_id)
        .where(ExceptionItem.office_id == caller.office_id)
    )
    if open_only:
        query = query.where(ExceptionItem.resolved_at.is_(None))
    else:
        query = query.where(ExceptionItem.resolved_at.is_not(None))
    if kind is not None:
        query = query.where(ExceptionItem.kind == kind)
    if before_id is not None:
        query = query.where(ExceptionItem.id < before_id)
    async with ctx.sessions() as session:
        found = (
            await session.execute(query.order_by(ExceptionItem.id.desc()).limit(limit + 1))
        ).all()
    rows = tuple(_item_view(item, state, no) for item, state, no in found[:limit])
    more = len(found) > limit
    return QueuePage(rows, rows[-1].id if more and rows else None)


async def delivery_detail(ctx: AppContext, caller: Caller, delivery_id: int) -> DeliveryView:
    """Everything a dispatcher acts on for one delivery of their office; not found when there is
    no such delivery at this office."""
    async with ctx.sessions() as session:
        found = await _delivery_view(session, caller.office_id, delivery_id)
    if found is None:
        raise ServiceError(Kind.NOT_FOUND, "unknown_delivery", "no such delivery")
    return found


async def _delivery_view(
    session: AsyncSession, office_id: int, delivery_id: int
) -> DeliveryView | None:
    delivery = await session.get(Delivery, delivery_id)
    if delivery is None or delivery.office_id != office_id:
        return None
    application = await session.get_one(Application, delivery.application_id)
    shipments = list(
        await session.scalars(
            select(Shipment)
            .where(Shipment.delivery_id == delivery.id)
            .order_by(Shipment.attempt_no)
        )
    )
    shipment_ids = [s.id for s in shipments]
    events = (
        list(
            await session.scalars(
                select(TrackingEventRow)
                .where(TrackingEventRow.shipment_id.in_(shipment_ids))
                .order_by(TrackingEventRow.occurred_at, TrackingEventRow.id)
            )
        )
        if shipment_ids
        else []
    )
    custody = list(
        await session.scalars(
            select(CustodyEvent)
            .where(CustodyEvent.delivery_id == delivery.id)
            .order_by(CustodyEvent.occurred_at, CustodyEvent.id)
        )
    )
    record = await session.scalar(
        select(Handover)
        .where(Handover.delivery_id == delivery.id)
        .order_by(Handover.id.desc())
        .limit(1)
    )
    handover_view = None
    if record is not None:
        proof = (
            await session.scalar(
                select(Proof)
                .where(Proof.shipment_id == record.shipment_id)
                .order_by(Proof.id.desc())
                .limit(1)
            )
            if record.shipment_id is not None
            else None
        )
        handover_view = HandoverView(
            id=record.id,
            state=record.state,
            method=record.method,
            verified=record.verified,
            verified_at=record.verified_at,
            confirm_failures=record.confirm_failures,
            created_at=record.created_at,
            proof=None
            if proof is None
            else ProofView(
                proof.receiver_name, proof.relation, proof.relation_kind, proof.occurred_at
            ),
        )
    open_items = await session.scalars(
        select(ExceptionItem)
        .where(
            ExceptionItem.delivery_id == delivery.id,
            ExceptionItem.office_id == office_id,
            ExceptionItem.resolved_at.is_(None),
        )
        .order_by(ExceptionItem.id)
    )
    return DeliveryView(
        id=delivery.id,
        application_no=application.application_no,
        state=delivery.state,
        reason=delivery.state_reason,
        collect_by=delivery.collect_by,
        handed_over_at=delivery.handed_over_at,
        created_at=delivery.created_at,
        updated_at=delivery.updated_at,
        applicant_name=application.applicant_name,
        phone=application.phone,
        destination=destination(delivery.destination_regency_code),
        shipments=tuple(
            ShipmentView(
                s.id,
                s.attempt_no,
                s.courier_code,
                s.client_reference,
                s.waybill,
                s.status,
                s.status_reason,
                s.booked_at,
            )
            for s in shipments
        ),
        events=tuple(
            EventView(
                e.shipment_id,
                e.occurred_at,
                e.status,
                e.raw_code,
                e.raw_text,
                e.location,
                e.source,
                e.applied,
                (e.source, *(str(o.get("source", "")) for o in e.other_raws)),
            )
            for e in events
        ),
        custody=tuple(
            CustodyView(
                c.holder,
                c.holder_ref,
                c.shipment_id,
                c.occurred_at,
                c.recorded_by,
                dict(c.evidence),
            )
            for c in custody
        ),
        handover=handover_view,
        open_items=tuple(_item_view(i) for i in open_items),
    )


# --------------------------------------------------------------------------------------------
# Actions


async def review_handover(
    ctx: AppContext, caller: Caller, handover_id: int, *, approve: bool, reason: str
) -> ReviewedHandover:
    """A dispatcher approves or refuses a handover under review, signed by the person behind
    the caller's token (:func:`courier.services.handover.review` owns the rules)."""
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        reviewer = await acting_person(
            session,
            caller,
            code="reviewer_required",
            message="a handover review is signed by a person: use an API token issued to an "
            "active staff user of this office",
        )
        record = await handover_of_office(
            session, office_id=caller.office_id, handover_id=handover_id
        )
        if record is None:
            raise ServiceError(Kind.NOT_FOUND, "unknown_handover", "no such handover")
        if await waits_for_applicant_only(session, record):
            raise ServiceError(
                Kind.CONFLICT,
                "not_under_review",
                "this handover awaits the applicant's own confirmation and is not under review",
            )
        record = await handover.review(
            session, handover_id, reviewer, approve, reason, now=now, office_id=caller.office_id
        )
        delivery = await session.get_one(Delivery, record.delivery_id)
        return ReviewedHandover(
            id=record.id,
            delivery_id=record.delivery_id,
            state=record.state,
            method=record.method,
            verified=record.verified,
            verified_at=record.verified_at,
            delivery_state=delivery.state,
        )


async def _close_booking_in_doubt(
    session: AsyncSession, caller: Caller, delivery_id: int, now: datetime, why: str
) -> Delivery | None:
    """A delivery whose shipment was left in ``booking`` (the outcome only the portal can
    tell): close that attempt first, so re-ship and collection are not refused for it. The
    delivery when an attempt was closed, else None."""
    delivery = await session.get(Delivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.office_id != caller.office_id:
        return None  # the step that follows answers "not found"
    closed = await stuck_booking.close_open_booking(
        session, delivery, actor=caller.actor, now=now, reason=f"closed by staff: {why}"
    )
    return delivery if closed is not None else None


async def reship(ctx: AppContext, caller: Caller, delivery_id: int) -> str:
    """Re-ship a returned passport, or keep it at the counter when time is short: the outcome
    (``queued`` or ``collect_at_counter``) as :func:`courier.services.watch.reship` decides.
    A delivery whose booking was left in doubt is released for a new attempt (``queued``)."""
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        delivery = await _close_booking_in_doubt(session, caller, delivery_id, now, "re-ship")
        if delivery is not None:
            await stuck_booking.requeue(session, delivery, actor=caller.actor, now=now)
            return "queued"
        return await watch.reship(
            session, delivery_id, caller.actor, now=now, office_id=caller.office_id
        )


async def collected_at_counter(
    ctx: AppContext, caller: Caller, delivery_id: int, identity: IdentityShown | None = None
) -> Collected:
    """The applicant collected the passport at the counter (final). A booking left in doubt
    is closed first (the passport never left the office). ``identity``: the document the
    counter checked; its type and masked number go with the custody event."""
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        delivery = await _close_booking_in_doubt(
            session, caller, delivery_id, now, "collected at the counter"
        )
        if delivery is not None and delivery.state == DeliveryState.SHIPPING.value:
            # the attempt is closed: the delivery no longer ships
            lifecycle.move_delivery(
                session,
                delivery,
                DeliveryState.NEEDS_ATTENTION,
                actor=caller.actor,
                now=now,
                reason="booking closed by staff",
            )
        await watch.collected_at_counter(
            session,
            delivery_id,
            caller.actor,
            now=ctx.clock.now(),
            office_id=caller.office_id,
            identity=None
            if identity is None
            else {
                "id_type": identity.id_type,
                "id_number": envelopes.mask_id_number(identity.id_number),
            },
        )
    return Collected(delivery_id, "collected_at_office")


async def returned_to_office(
    ctx: AppContext,
    caller: Caller,
    delivery_id: int,
    *,
    seal_intact: bool,
    note: str,
    seal_number: str | None = None,
) -> ReturnedToOffice:
    """The envelope is back at the office, with or without the courier's final return scan
    (:func:`courier.services.watch.returned_to_office` owns the rules). ``seal_number`` as
    read on the envelope: normalised, then checked against the manifest's (422 naming
    ``$.seal_number`` when it is no seal number at all)."""
    seal = None
    if seal_number is not None:
        seal = envelopes.normalise_seal(seal_number)
        if seal is None:
            raise invalid([FieldError("$.seal_number", envelopes.SEAL_MESSAGE)])
    async with transaction(ctx.sessions) as session:
        shipment = await watch.returned_to_office(
            session,
            delivery_id,
            caller.actor,
            now=ctx.clock.now(),
            office_id=caller.office_id,
            seal_intact=seal_intact,
            note=note,
            seal_number=seal,
        )
        delivery = await session.get_one(Delivery, delivery_id)
        checked = await watch.seal_check(session, shipment, seal)
        return ReturnedToOffice(
            delivery_id, shipment.id, delivery.state, seal, checked.get("seal_matches")
        )


# --------------------------------------------------------------------------------------------
# Steps (inside the caller's transaction)


async def acting_person(session: AsyncSession, caller: Caller, *, code: str, message: str) -> int:
    """The staff user behind the caller's token, for acts recorded against a person (a review,
    a manifest's signature); forbidden ``code`` when the token is held by no active staff user."""
    if caller.token_id is None:  # a console session: the signed-in person, if still active
        person = await session.scalar(
            select(StaffUser.id).where(
                StaffUser.id == caller.staff_user_id,
                StaffUser.office_id == caller.office_id,
                StaffUser.active,
            )
        )
    else:
        person = await reviewer_for_token(
            session, token_id=caller.token_id, office_id=caller.office_id
        )
    if person is None:
        raise ServiceError(Kind.FORBIDDEN, code, message)
    return person


async def handover_of_office(
    session: AsyncSession, *, office_id: int, handover_id: int
) -> Handover | None:
    """The handover, locked for this transaction, when its delivery belongs to ``office_id``;
    else None. Locked here, at its first read: the review service reads it again, and a row
    already in the session would otherwise keep what this read saw."""
    found: Handover | None = (
        await session.execute(
            select(Handover)
            .join(Delivery, Delivery.id == Handover.delivery_id)
            .where(Handover.id == handover_id, Delivery.office_id == office_id)
            .with_for_update(of=Handover)
        )
    ).scalar_one_or_none()
    return found


async def waits_for_applicant_only(session: AsyncSession, record: Handover) -> bool:
    """True when the handover still waits for the applicant's own confirmation and no open item
    asks a dispatcher to review it: not under review yet, so not a dispatcher's to decide.

    Under review are the handovers the policy sent to review (a family member, a surat kuasa,
    someone else) and those still awaiting the applicant with an open item asking for a review
    (never confirmed; locked by wrong numbers). Decided handovers are the review service's to
    refuse."""
    if record.verified or record.state != AWAITING:
        return False
    asked = await session.scalar(
        select(ExceptionItem.id)
        .where(
            ExceptionItem.delivery_id == record.delivery_id,
            ExceptionItem.kind.in_(REVIEW_ITEM_KINDS),
            ExceptionItem.resolved_at.is_(None),
        )
        .limit(1)
    )
    return asked is None


async def reviewer_for_token(session: AsyncSession, *, token_id: int, office_id: int) -> int | None:
    """The staff user a token was issued to, when that user is active at ``office_id``: a
    handover review is signed by a person (``handovers.reviewer_id``), not by a system token."""
    user_id = await session.scalar(
        select(StaffUser.id)
        .join(ApiToken, ApiToken.staff_user_id == StaffUser.id)
        .where(
            ApiToken.id == token_id,
            StaffUser.office_id == office_id,
            StaffUser.active,
        )
    )
    return int(user_id) if user_id is not None else None
