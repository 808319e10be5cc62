"""Small steps every tracking, handover and watch use case shares: moving a delivery between
states (checked against the domain's table, audited) and appending to the custody chain.

A move also closes the delivery's open exception items whose cause it removes
(:data:`courier.domain.item_causes.GONE_WHEN`: collected, handed over, re-booked, …), with the
mover as who and the new state as why. :func:`move_delivery` is a plain function called from
dozens of steps, so the closing UPDATE is queued on the session and run just before its commit
(:func:`_close_items_whose_cause_is_gone`), in the same transaction as the move and after the
step's own resolutions (which keep their own words: "handover verified").
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

import structlog
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from courier.db.models import CustodyEvent, Delivery, ExceptionItem, Office
from courier.domain.item_causes import gone_when
from courier.domain.states import DeliveryState, TransitionRefused, check_delivery_move
from courier.domain.watch import DEFAULT_PICKUP_SLOTS
from courier.services import audit
from courier.services.wakeups import notify_queued

log = structlog.get_logger()


def move_delivery(
    session: AsyncSession,
    delivery: Delivery,
    target: DeliveryState,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
) -> bool:
    """Move ``delivery`` to ``target`` when the rules allow it (audited); False when they do not.

    A refused move is not an error here: courier events arrive for deliveries that staff have
    already moved on (cancelled, expired); the event is still kept, the delivery stays put.
    """
    current = DeliveryState(delivery.state)
    if current is target:
        return False
    try:
        check_delivery_move(current, target)
    except TransitionRefused:
        log.warning(
            "delivery_move_refused",
            delivery_id=delivery.id,
            current=current.value,
            target=target.value,
        )
        return False
    delivery.state = target.value
    delivery.state_reason = reason
    delivery.updated_at = now
    audit.record(
        session,
        at=now,
        actor=actor,
        action="delivery.state",
        entity="delivery",
        entity_id=delivery.id,
        office_id=delivery.office_id,
        before={"state": current.value},
        after={"state": target.value},
        reason=reason,
    )
    kinds = gone_when(target)
    if kinds:
        session.info.setdefault(_ITEMS_GONE, []).append(
            (delivery.id, kinds, actor, now, target.value)
        )
    return True


_ITEMS_GONE = "courier.items_whose_cause_is_gone"


@event.listens_for(Session, "before_commit")
def _close_items_whose_cause_is_gone(session: Session) -> None:
    for delivery_id, kinds, actor, now, state in session.info.pop(_ITEMS_GONE, ()):
        session.connection().execute(
            update(ExceptionItem.__table__)  # type: ignore[arg-type]
            .where(
                ExceptionItem.__table__.c.delivery_id == delivery_id,
                ExceptionItem.__table__.c.kind.in_(kinds),
                ExceptionItem.__table__.c.resolved_at.is_(None),
            )
            .values(
                resolved_at=now,
                resolved_by=actor[:64],
                resolution=f"closed by itself: the delivery is {state}",
            )
        )


async def last_custody(session: AsyncSession, delivery_id: int) -> CustodyEvent | None:
    result = await session.execute(
        select(CustodyEvent)
        .where(CustodyEvent.delivery_id == delivery_id)
        .order_by(CustodyEvent.occurred_at.desc(), CustodyEvent.id.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def record_custody(
    session: AsyncSession,
    *,
    delivery_id: int,
    shipment_id: int | None,
    holder: str,
    holder_ref: str,
    occurred_at: datetime,
    evidence: dict[str, Any],
    recorded_by: str,
    now: datetime,
) -> CustodyEvent | None:
    """Append a change of hands; None when ``holder`` (same ref, same shipment) already holds it,
    so a manifest signature and a pickup scan do not record the same hand-over twice."""
    last = await last_custody(session, delivery_id)
    if (
        last is not None
        and last.holder == holder
        and last.holder_ref == holder_ref
        and last.shipment_id == shipment_id
    ):
        return None
    event = CustodyEvent(
        delivery_id=delivery_id,
        shipment_id=shipment_id,
        holder=holder,
        holder_ref=holder_ref,
        occurred_at=occurred_at,
        evidence=evidence,
        recorded_by=recorded_by,
        created_at=now,
    )
    session.add(event)
    await session.flush()
    return event


def pickup_slots(office: Office | None) -> tuple[time, ...]:
    """The office's pickup slots ("HH:MM" WIB) as times; the domain default when unset."""
    slots: list[time] = []
    for text in (office.pickup_slots if office is not None else None) or []:
        try:
            hour, minute = str(text).split(":")[:2]
            slots.append(time(int(hour), int(minute)))
        except ValueError:
            continue
    return tuple(slots) or DEFAULT_PICKUP_SLOTS


async def requeue(
    session: AsyncSession, delivery: Delivery, *, actor: str, now: datetime, reason: str
) -> None:
    """Back to the booking queue for a new attempt (a new reference), due at once, and wake the
    workers."""
    move_delivery(session, delivery, DeliveryState.QUEUED, actor=actor, now=now, reason=reason)
    delivery.next_attempt_at = now
    delivery.lease_owner = None
    delivery.lease_until = None
    await notify_queued(session)
