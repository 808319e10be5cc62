"""The console's exceptions queue: open items, the nearest deadline first, and closing one by
hand with a note (who, when, why: on the item and in the audit log).

Items also close by themselves when their cause goes away (:mod:`courier.domain.item_causes`,
applied by :func:`courier.services.lifecycle.move_delivery`); what is left here is what a person
decided ("called the applicant, they collect on Monday").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import Application, Delivery, ExceptionItem
from courier.domain.exception_kinds import NEXT_STEPS, ExceptionKind, Text
from courier.services import audit
from courier.services.errors import Kind, ServiceError
from courier.services.staff import Caller

QUEUE_LIMIT = 500


@dataclass(frozen=True, slots=True)
class QueueItem:
    id: int
    kind: str
    next_step: Text
    detail: str
    opened_at: datetime
    delivery_id: int | None
    application_no: str | None
    delivery_state: str | None
    collect_by: datetime | None


@dataclass(frozen=True, slots=True)
class Resolved:
    id: int
    kind: str
    delivery_id: int | None
    resolved_at: datetime
    resolved_by: str
    resolution: str


def _text(kind: str) -> Text:
    try:
        return NEXT_STEPS[ExceptionKind(kind)]
    except ValueError:
        return Text(kind, kind)


async def queue(ctx: AppContext, caller: Caller, *, kind: str | None = None) -> list[QueueItem]:
    """The office's open items, the nearest collect-by deadline first (items without one last),
    then the oldest; at most :data:`QUEUE_LIMIT`."""
    query = (
        select(ExceptionItem, Application.application_no, Delivery.state, Delivery.collect_by)
        .outerjoin(Delivery, Delivery.id == ExceptionItem.delivery_id)
        .outerjoin(Application, Application.id == Delivery.application_id)
        .where(ExceptionItem.office_id == caller.office_id, ExceptionItem.resolved_at.is_(None))
    )
    if kind is not None:
        query = query.where(ExceptionItem.kind == kind)
    query = query.order_by(
        Delivery.collect_by.is_(None),
        Delivery.collect_by,
        ExceptionItem.opened_at,
        ExceptionItem.id,
    ).limit(QUEUE_LIMIT)
    async with ctx.sessions() as session:
        found = (await session.execute(query)).all()
    return [
        QueueItem(
            id=item.id,
            kind=item.kind,
            next_step=_text(item.kind),
            detail=item.detail,
            opened_at=item.opened_at,
            delivery_id=item.delivery_id,
            application_no=application_no,
            delivery_state=state,
            collect_by=collect_by,
        )
        for item, application_no, state, collect_by in found
    ]


async def resolve(ctx: AppContext, caller: Caller, item_id: int, *, note: str) -> Resolved:
    """Close one open item of the caller's office with ``note`` (why). Not found for another
    office's item; conflict ``already_resolved`` for one closed already (by a person or by
    itself)."""
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        item = await session.scalar(
            select(ExceptionItem)
            .where(ExceptionItem.id == item_id, ExceptionItem.office_id == caller.office_id)
            .with_for_update()
        )
        if item is None:
            raise ServiceError(Kind.NOT_FOUND, "unknown_item", "no such exception item")
        if item.resolved_at is not None:
            raise ServiceError(
                Kind.CONFLICT,
                "already_resolved",
                "Item ini sudah ditutup. / This item is closed already.",
            )
        item.resolved_at = now
        item.resolved_by = caller.actor[:64]
        item.resolution = note
        audit.record(
            session,
            at=now,
            actor=caller.actor,
            action="exception_item.resolved",
            entity="exception_item",
            entity_id=item.id,
            office_id=caller.office_id,
            before={"open": True},
            after={"open": False, "kind": item.kind, "delivery_id": item.delivery_id},
            reason=note,
        )
        return Resolved(item.id, item.kind, item.delivery_id, now, item.resolved_by, note)
