"""Watchers: what must reach a dispatcher before it is too late, and the return path.

* :func:`scan_deadlines` — warn dispatch at D-10 and D-3 before the collect-by date of every
  passport not yet handed over (an exception item plus a staff notification, each once); at the
  deadline the delivery becomes ``expired`` with its reason.
* :func:`scan_stuck` — shipments with no event for longer than their status allows
  (:func:`courier.domain.watch.stuck_after`).
* :func:`scan_unconfirmed` — delivered, but the applicant has not confirmed after N days.
* :func:`on_returned` — the courier brought the passport back: an exception item whose next step
  depends on the time left; :func:`reship` is the dispatcher's action (re-queue for a new
  shipment attempt, or keep it for collection at the counter), :func:`collected_at_counter`
  closes the counter path.

Every item is deduplicated by key, so a scan may run any number of times, in any number of
workers. Each delivery is handled in its own short transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.status import Status
from courier.db.engine import SessionFactory, transaction
from courier.db.models import (
    OPEN_SHIPMENT_STATUSES,
    CustodyEvent,
    Delivery,
    ExceptionItem,
    Handover,
    ManifestItem,
    Office,
    Shipment,
)
from courier.domain.deadlines import WARNING_DAYS, days_left, deadline_passed, deadline_warnings
from courier.domain.envelopes import normalise_seal
from courier.domain.exception_kinds import ExceptionKind
from courier.domain.states import RETURNABLE_BY_STAFF, DeliveryState
from courier.domain.watch import stuck_after, unconfirmed_after
from courier.services import audit, items, lifecycle, notices
from courier.services.errors import Kind, ServiceError

AT_COUNTER_REASON = "awaiting collection at the counter"
WATCH_ACTOR = "worker:watch"  # the audit log's name for the watchers
log = structlog.get_logger()

# A re-shipment needs a pickup slot, up to three days on the road and a failed attempt's retry:
# with less time than this before collect-by, the counter is the safer way.
RESHIP_MARGIN = timedelta(days=6)
_WATCHED_STATES = (
    DeliveryState.QUEUED.value,
    DeliveryState.SHIPPING.value,
    DeliveryState.RETURNED.value,
    DeliveryState.NEEDS_ATTENTION.value,
)


def reship_allowed(collect_by: datetime | None, now: datetime) -> bool:
    return collect_by is None or collect_by - now >= RESHIP_MARGIN


# --------------------------------------------------------------------------------------------
# Returns


async def on_returned(
    session: AsyncSession, delivery: Delivery, shipment: Shipment, *, now: datetime
) -> None:
    """The courier reports the passport back at the office: tell dispatch what to do next."""
    late = (
        ""
        if reship_allowed(delivery.collect_by, now)
        else ("; too little time is left to re-ship: the applicant collects at the counter")
    )
    await items.open_exception(
        session,
        office_id=delivery.office_id,
        delivery_id=delivery.id,
        shipment_id=shipment.id,
        kind=ExceptionKind.RETURNED,
        detail="the courier returned the passport to the office"
        + (f" ({shipment.status_reason})" if shipment.status_reason else "")
        + late,
        dedupe_key=f"returned:{shipment.id}",
        now=now,
    )


async def _delivery_for_staff(session: AsyncSession, delivery_id: int, office_id: int) -> Delivery:
    """The delivery, locked, when it belongs to the caller's office (invariant 5: another
    office's delivery is "not found", exactly like one that does not exist)."""
    delivery = await session.get(Delivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.office_id != office_id:
        raise ServiceError(Kind.NOT_FOUND, "unknown_delivery", "no such delivery")
    return delivery


async def _back_at_counter(
    session: AsyncSession, delivery: Delivery, actor: str, now: datetime
) -> None:
    last = await session.scalar(
        select(CustodyEvent.holder)
        .where(CustodyEvent.delivery_id == delivery.id)
        .order_by(CustodyEvent.occurred_at.desc(), CustodyEvent.id.desc())
        .limit(1)
    )
    if last == "office":  # received back already (returned_to_office): one entry, not two
        return
    await lifecycle.record_custody(
        session,
        delivery_id=delivery.id,
        shipment_id=None,
        holder="office",
        holder_ref=actor,
        occurred_at=now,
        evidence={"event": "received_back_at_counter"},
        recorded_by=actor,
        now=now,
    )


BOOKING_REFUSED = "booking_rejected"  # the exception kind courier/services/booking.py opens


async def _booking_refused(session: AsyncSession, delivery_id: int) -> bool:
    """An open item says the courier refused this delivery's booking (nothing left the office)."""
    found = await session.scalar(
        select(ExceptionItem.id)
        .where(
            ExceptionItem.delivery_id == delivery_id,
            ExceptionItem.kind == BOOKING_REFUSED,
            ExceptionItem.resolved_at.is_(None),
        )
        .limit(1)
    )
    return found is not None


async def reship(
    session: AsyncSession,
    delivery_id: int,
    actor: str,
    *,
    now: datetime,
    office_id: int,
) -> str:
    """Dispatcher's action on a returned passport, or on one whose booking the courier refused
    (fixed since: a sender block or an address): ``"queued"`` (back to the booking queue for a
    new shipment attempt, a new reference) when there is time, else ``"collect_at_counter"``
    (it stays at the office, the applicant is told to collect it). Records a returned passport
    back in the office's custody (a refused booking never left it). ``actor`` as in the audit
    log (``staff:7``); ``office_id`` is the caller's office: a delivery of another office is
    not found."""
    delivery = await _delivery_for_staff(session, delivery_id, office_id)
    refused = delivery.state == DeliveryState.NEEDS_ATTENTION.value and await _booking_refused(
        session, delivery.id
    )
    if delivery.state != DeliveryState.RETURNED.value and not refused:
        raise ServiceError(
            Kind.CONFLICT,
            "not_returned",
            "only a returned passport, or one whose booking the courier refused, can be re-shipped",
        )
    if not refused:
        await _back_at_counter(session, delivery, actor, now)
    if reship_allowed(delivery.collect_by, now):
        await lifecycle.requeue(
            session, delivery, actor=actor, now=now, reason="re-shipping after a return"
        )
        outcome = "queued"
    else:
        delivery.state_reason = AT_COUNTER_REASON
        delivery.updated_at = now
        audit.record(
            session,
            at=now,
            actor=actor,
            action="delivery.collect_at_counter",
            entity="delivery",
            entity_id=delivery.id,
            office_id=delivery.office_id,
            after={"state": delivery.state, "next": "collect_at_counter"},
            reason="too little time left to re-ship",
        )
        await items.queue_outbox(
            session,
            kind="applicant_collect_at_counter",
            delivery_id=delivery.id,
            payload={"delivery_id": delivery.id, **notices.deadline_facts(delivery)},
            dedupe_key=f"collect_at_counter:{delivery.id}",
            now=now,
        )
        outcome = "collect_at_counter"
    await items.resolve_exceptions(
        session,
        delivery_id=delivery.id,
        kinds=("returned", BOOKING_REFUSED),
        by=actor,
        resolution=outcome,
        now=now,
    )
    return outcome


async def returned_to_office(
    session: AsyncSession,
    delivery_id: int,
    actor: str,
    *,
    now: datetime,
    office_id: int,
    seal_intact: bool,
    note: str = "",
    seal_number: str | None = None,
) -> Shipment:
    """The envelope is back at the office although the courier never said so (no final return
    scan, or a parcel sent back silently): the dispatcher records it. The shipment becomes
    ``returned``, custody goes back to the office, the delivery becomes ``returned`` and, as for a
    return the courier reports, an item asks to re-ship or keep it for the counter
    (:func:`reship`). Conflict when no shipment of the delivery is with the courier.

    ``seal_number`` (normalised) is the number read on the envelope's seal: it is checked
    against the seal recorded on the pickup manifest and the verdict kept with the custody
    event (a different seal is recorded, not refused: the envelope is here either way, and a
    person must look at it). A return the courier already reported (shipment ``returned``) is
    received the same way once the envelope is in hand: custody back to the office."""
    delivery = await _delivery_for_staff(session, delivery_id, office_id)
    shipment = await session.scalar(
        select(Shipment)
        .where(Shipment.delivery_id == delivery.id, Shipment.status.in_(OPEN_SHIPMENT_STATUSES))
        .with_for_update()
    )
    reported = await _reported_return(session, delivery) if shipment is None else None
    seal = await seal_check(session, shipment or reported, seal_number)
    if reported is not None:
        return await _receive_reported_return(
            session,
            delivery,
            reported,
            actor,
            now=now,
            seal_intact=seal_intact,
            seal=seal,
            note=note,
        )
    if shipment is None or Status(shipment.status) not in RETURNABLE_BY_STAFF:
        raise ServiceError(
            Kind.CONFLICT,
            "not_with_courier",
            "no shipment of this delivery is with the courier: only a parcel the courier "
            "picked up can come back"
            + (f" (the shipment is {shipment.status})" if shipment is not None else ""),
        )
    before = shipment.status
    shipment.status = Status.RETURNED.value
    shipment.status_reason = (
        "received back at the office by staff"
        + ("" if seal_intact else "; the seal was NOT intact")
        + (
            "; the seal number does NOT match the manifest"
            if seal.get("seal_matches") is False
            else ""
        )
    )
    shipment.next_poll_at = None
    shipment.updated_at = now
    audit.record(
        session,
        at=now,
        actor=actor,
        action="shipment.returned_to_office",
        entity="shipment",
        entity_id=shipment.id,
        office_id=delivery.office_id,
        before={"status": before},
        after={"status": shipment.status, "seal_intact": seal_intact, **seal},
        reason=note or None,
    )
    await lifecycle.record_custody(
        session,
        delivery_id=delivery.id,
        shipment_id=shipment.id,
        holder="office",
        holder_ref=actor,
        occurred_at=now,
        evidence={"event": "returned_to_office", "seal_intact": seal_intact, **seal},
        recorded_by=actor,
        now=now,
    )
    lifecycle.move_delivery(
        session,
        delivery,
        DeliveryState.RETURNED,
        actor=actor,
        now=now,
        reason="received back at the office without the courier's final return scan",
    )
    await items.resolve_exceptions(
        session,
        delivery_id=delivery.id,
        kinds=("stuck", "return_overdue", "delivery_failed"),
        by=actor,
        resolution="received back at the office",
        now=now,
    )
    await on_returned(session, delivery, shipment, now=now)
    return shipment


async def _reported_return(session: AsyncSession, delivery: Delivery) -> Shipment | None:
    """The delivery's latest shipment when the courier reported it returned and the envelope
    has not been received at the office since (the last custody holder is not the office)."""
    latest = await session.scalar(
        select(Shipment)
        .where(Shipment.delivery_id == delivery.id)
        .order_by(Shipment.attempt_no.desc())
        .limit(1)
    )
    if latest is None or latest.status != Status.RETURNED.value:
        return None
    holder = await session.scalar(
        select(CustodyEvent.holder)
        .where(CustodyEvent.delivery_id == delivery.id)
        .order_by(CustodyEvent.occurred_at.desc(), CustodyEvent.id.desc())
        .limit(1)
    )
    return None if holder == "office" else latest


async def seal_check(
    session: AsyncSession, shipment: Shipment | None, seal_number: str | None
) -> dict[str, Any]:
    """The seal read on the envelope against the one on its manifest, as custody evidence."""
    if seal_number is None:
        return {}
    recorded = (
        await session.scalar(
            select(ManifestItem.seal_number).where(ManifestItem.shipment_id == shipment.id)
        )
        if shipment is not None
        else None
    )
    return {
        "seal_number": seal_number,
        "seal_recorded": recorded,
        # seals recorded before numbers were normalised kept their dashes
        "seal_matches": None if recorded is None else normalise_seal(recorded) == seal_number,
    }


async def _receive_reported_return(
    session: AsyncSession,
    delivery: Delivery,
    shipment: Shipment,
    actor: str,
    *,
    now: datetime,
    seal_intact: bool,
    seal: dict[str, Any],
    note: str,
) -> Shipment:
    evidence = {"event": "returned_to_office", "seal_intact": seal_intact, **seal}
    audit.record(
        session,
        at=now,
        actor=actor,
        action="shipment.received_at_office",
        entity="shipment",
        entity_id=shipment.id,
        office_id=delivery.office_id,
        after=evidence,
        reason=note or None,
    )
    await lifecycle.record_custody(
        session,
        delivery_id=delivery.id,
        shipment_id=shipment.id,
        holder="office",
        holder_ref=actor,
        occurred_at=now,
        evidence=evidence,
        recorded_by=actor,
        now=now,
    )
    await items.resolve_exceptions(
        session,
        delivery_id=delivery.id,
        kinds=("return_overdue",),
        by=actor,
        resolution="received back at the office",
        now=now,
    )
    return shipment


async def collected_at_counter(
    session: AsyncSession,
    delivery_id: int,
    actor: str,
    *,
    now: datetime,
    office_id: int,
    identity: Mapping[str, str] | None = None,
) -> None:
    """The applicant collected the passport in person at the counter (final). ``office_id`` is
    the caller's office: a delivery of another office is not found. ``identity``: the ID
    document checked (type, masked number), kept with the custody event."""
    delivery = await _delivery_for_staff(session, delivery_id, office_id)
    if not lifecycle.move_delivery(
        session,
        delivery,
        DeliveryState.COLLECTED_AT_OFFICE,
        actor=actor,
        now=now,
        reason="collected in person at the counter",
    ):
        raise ServiceError(
            Kind.CONFLICT, "not_collectable", "this delivery cannot be collected at the counter"
        )
    await lifecycle.record_custody(
        session,
        delivery_id=delivery.id,
        shipment_id=None,
        holder="applicant",
        holder_ref="counter",
        occurred_at=now,
        # the identity document shown, its number masked (enough to tell two apart)
        evidence={"event": "collected_at_counter", "staff": actor, **(identity or {})},
        recorded_by=actor,
        now=now,
    )
    await items.resolve_exceptions(
        session,
        delivery_id=delivery.id,
        kinds=("returned", "deadline_warning", ExceptionKind.NO_CONTRACT.value),
        by=actor,
        resolution="collected at the counter",
        now=now,
    )


# --------------------------------------------------------------------------------------------
# Scans


async def scan_deadlines(sessions: SessionFactory, *, now: datetime) -> int:
    """Warnings and expiries due now; the number of items opened plus deliveries expired."""
    horizon = now + timedelta(days=max(WARNING_DAYS) + 1)
    async with sessions() as session:
        ids = list(
            (
                await session.execute(
                    select(Delivery.id).where(
                        Delivery.state.in_(_WATCHED_STATES),
                        Delivery.collect_by.is_not(None),
                        Delivery.collect_by <= horizon,
                    )
                )
            ).scalars()
        )
    done = 0
    for delivery_id in ids:
        async with transaction(sessions) as session:
            done += await _deadline_one(session, delivery_id, now)
    return done


async def _deadline_one(session: AsyncSession, delivery_id: int, now: datetime) -> int:
    delivery = await session.get(Delivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.collect_by is None or delivery.state not in _WATCHED_STATES:
        return 0
    done = 0
    if deadline_passed(delivery.collect_by, now):
        reason = "the collect-by deadline passed before the passport was handed over"
        if lifecycle.move_delivery(
            session, delivery, DeliveryState.EXPIRED, actor=WATCH_ACTOR, now=now, reason=reason
        ):
            done += 1
            await items.open_exception(
                session,
                office_id=delivery.office_id,
                delivery_id=delivery.id,
                kind=ExceptionKind.EXPIRED,
                detail=reason,
                dedupe_key=f"expired:{delivery.id}",
                now=now,
            )
        return done
    left = days_left(delivery.collect_by, now)
    for label in deadline_warnings(delivery.collect_by, now):
        opened = await items.open_exception(
            session,
            office_id=delivery.office_id,
            delivery_id=delivery.id,
            kind=ExceptionKind.DEADLINE_WARNING,
            detail=f"{label}: {left} day(s) left before the collect-by deadline and the "
            f"passport is not handed over (delivery {delivery.state})",
            dedupe_key=f"deadline:{delivery.id}:{label}",
            now=now,
        )
        if opened is not None:
            done += 1
            await items.queue_outbox(
                session,
                kind="staff_deadline_warning",
                delivery_id=delivery.id,
                payload={"delivery_id": delivery.id, "label": label, "days_left": left},
                dedupe_key=f"deadline:{delivery.id}:{label}",
                now=now,
            )
            await notices.queue(
                session,
                "applicant_deadline",
                delivery,
                now=now,
                key=label,
                facts={"days": left, **notices.deadline_facts(delivery)},
            )
    return done


async def scan_stuck(sessions: SessionFactory, *, now: datetime) -> int:
    """Open an item for every open shipment silent for longer than its status allows."""
    async with sessions() as session:
        rows = (
            await session.execute(
                select(Shipment, Delivery.office_id)
                .join(Delivery, Delivery.id == Shipment.delivery_id)
                .where(Shipment.status.in_(OPEN_SHIPMENT_STATUSES))
            )
        ).all()
        offices = {o.id: o for o in (await session.execute(select(Office))).scalars()}
    opened = 0
    for shipment, office_id in rows:
        status = Status(shipment.status)
        since = shipment.last_event_at or shipment.booked_at or shipment.created_at
        limit = stuck_after(status, since, lifecycle.pickup_slots(offices.get(office_id)))
        if limit is None or limit > now:
            continue
        # a return that never gets its final scan is the usual silent shipment: the envelope
        # may well be at the office already, and only a person can tell
        returning = status is Status.RETURNING
        async with transaction(sessions) as session:
            item = await items.open_exception(
                session,
                office_id=office_id,
                delivery_id=shipment.delivery_id,
                shipment_id=shipment.id,
                kind=ExceptionKind.RETURN_OVERDUE if returning else ExceptionKind.STUCK,
                detail=f"no courier event since {since.isoformat()} while {status.value}",
                dedupe_key=f"stuck:{shipment.id}:{status.value}:{int(since.timestamp())}",
                now=now,
            )
        opened += item is not None
    return opened


async def scan_unconfirmed(
    sessions: SessionFactory, *, now: datetime, days: int | None = None
) -> int:
    """Open an item (and remind the applicant) for every handover still awaiting the
    applicant's confirmation after ``days`` (the domain default when None)."""
    async with sessions() as session:
        rows = (
            await session.execute(
                select(Handover, Delivery.office_id)
                .join(Delivery, Delivery.id == Handover.delivery_id)
                .where(
                    Handover.state == "awaiting_confirmation",
                    Delivery.state == DeliveryState.DELIVERED.value,
                )
            )
        ).all()
    opened = 0
    for record, office_id in rows:
        due = (
            unconfirmed_after(record.created_at)
            if days is None
            else unconfirmed_after(record.created_at, days)
        )
        if due > now:
            continue
        async with transaction(sessions) as session:
            item = await items.open_exception(
                session,
                office_id=office_id,
                delivery_id=record.delivery_id,
                shipment_id=record.shipment_id,
                kind=ExceptionKind.UNCONFIRMED,
                detail="delivered by the courier, but the applicant has not confirmed "
                "possession on the tracking page",
                dedupe_key=f"unconfirmed:{record.id}",
                now=now,
            )
            if item is not None:
                await items.queue_outbox(
                    session,
                    kind="applicant_confirm_reminder",
                    delivery_id=record.delivery_id,
                    payload={"delivery_id": record.delivery_id, "handover_id": record.id},
                    dedupe_key=f"confirm_reminder:{record.id}",
                    now=now,
                )
                # invariant 3: a delivery nobody will move on rests visibly in needs-attention;
                # the applicant can still confirm from there (the handover stays awaiting)
                delivery = await session.get_one(Delivery, record.delivery_id)
                lifecycle.move_delivery(
                    session,
                    delivery,
                    DeliveryState.NEEDS_ATTENTION,
                    actor=WATCH_ACTOR,
                    now=now,
                    reason="delivered, but the applicant has not confirmed possession",
                )
        opened += item is not None
    return opened


async def close_settled_waits(sessions: SessionFactory, *, now: datetime) -> int:
    """Close the ``no_contract`` items of deliveries that stopped waiting for a contract some
    other way (cancelled, expired, collected at the counter): one set-based statement. A
    delivery that books closes its own item (courier/services/booking.py)."""
    waiting = select(Delivery.id).where(Delivery.state == DeliveryState.QUEUED.value)
    async with transaction(sessions) as session:
        result = await session.execute(
            update(ExceptionItem)
            .where(
                ExceptionItem.kind == ExceptionKind.NO_CONTRACT.value,
                ExceptionItem.resolved_at.is_(None),
                ExceptionItem.delivery_id.not_in(waiting),
            )
            .values(resolved_at=now, resolved_by="watch", resolution="no longer waiting")
            .execution_options(synchronize_session=False)
        )
    return int(getattr(result, "rowcount", 0) or 0)


async def scan_all(sessions: SessionFactory, *, now: datetime) -> int:
    await close_settled_waits(sessions, now=now)
    total = await scan_deadlines(sessions, now=now)
    total += await scan_stuck(sessions, now=now)
    total += await scan_unconfirmed(sessions, now=now)
    if total:
        log.info("watch_scan", opened=total)
    return total
