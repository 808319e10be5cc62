"""Read models for the dispatcher's staff API: the exceptions queue and one delivery in full.

Queries only; the dispatcher's actions are the use cases of :mod:`courier.services.handover`
(review) and :mod:`courier.services.watch` (reship, collected at the counter). Every query takes
the caller's office and finds nothing outside it (invariant 5: another office's delivery is "not
found", exactly like one that does not exist).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

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
from courier.services.handover import AWAITING

# Open items that ask a dispatcher to review a handover still awaiting the applicant (the
# applicant never confirmed, or locked the confirmation with wrong numbers).
REVIEW_ITEM_KINDS = ("handover_locked", "unconfirmed")


@dataclass(frozen=True, slots=True)
class QueueRow:
    item: ExceptionItem
    delivery_state: str | None  # None for an item that is not about one delivery
    application_no: str | None


@dataclass(frozen=True, slots=True)
class QueuePage:
    rows: list[QueueRow]
    next_cursor: int | None  # the last row's id when more rows follow


async def exceptions_queue(
    session: AsyncSession,
    *,
    office_id: int,
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
        .where(ExceptionItem.office_id == office_id)
    )
    if open_only:
        query = query.where(ExceptionItem.resolved_at.is_(None))
    else:
        query = query.where(ExceptionItem.resolved_at.is_not(None))
    if kind is not None:
        query = query.where(ExceptionItem.kind == kind)
    if before_id is not None:
        query = query.where(ExceptionItem.id < before_id)
    found = (await session.execute(query.order_by(ExceptionItem.id.desc()).limit(limit + 1))).all()
    rows = [QueueRow(item, state, no) for item, state, no in found[:limit]]
    more = len(found) > limit
    return QueuePage(rows, rows[-1].item.id if more and rows else None)


@dataclass(frozen=True, slots=True)
class HandoverDetail:
    handover: Handover
    proof: Proof | None


@dataclass(frozen=True, slots=True)
class DeliveryDetail:
    delivery: Delivery
    application: Application
    shipments: Sequence[Shipment]
    events: Sequence[TrackingEventRow]
    custody: Sequence[CustodyEvent]
    handover: HandoverDetail | None
    open_items: Sequence[ExceptionItem]


async def delivery_detail(
    session: AsyncSession, *, office_id: int, delivery_id: int
) -> DeliveryDetail | None:
    """Everything a dispatcher acts on for one delivery of their office; None when there is no
    such delivery at this office."""
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
    handover = None
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
        handover = HandoverDetail(record, proof)
    open_items = list(
        await session.scalars(
            select(ExceptionItem)
            .where(
                ExceptionItem.delivery_id == delivery.id,
                ExceptionItem.office_id == office_id,
                ExceptionItem.resolved_at.is_(None),
            )
            .order_by(ExceptionItem.id)
        )
    )
    return DeliveryDetail(delivery, application, shipments, events, custody, handover, open_items)


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
