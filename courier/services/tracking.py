"""Recording courier tracking events: the one idempotent path that polls and pushes both feed.

:func:`apply_events` keeps every event raw beside its normalised status, and moves the shipment's
status only forward (invariant 2). One scan is one row: events are deduplicated on the normalised
scan (:func:`courier.domain.scans.scan_key`: shipment, status, time, place), so a re-sent push, an
overlapping poll and the push and poll copies of one scan are stored once; a copy from another
source keeps its raw form beside the first (``other_raws``).

* events are folded in ``occurred_at`` order through :func:`courier.domain.states.next_status`,
  which never lowers the rank (delivered never becomes in transit);
* an event older than one already seen may still raise the rank, but never switches between
  equal ranks: a late "delivery failed" cannot undo the "out for delivery" of the next attempt;
* an unmapped code (status None) is stored, changes nothing, and opens an exception item.

Each change of status carries its consequences in the same transaction: the delivery's state,
custody (office → courier at pickup, courier → receiver on delivery), the proof of delivery and
the handover policy, exception items, the next poll time, and the audit log. The caller holds the
shipment row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite serialises writers) so a push and a
poll of the same parcel cannot interleave.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, time
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import TrackingEvent
from core.status import Status
from courier.db.models import Application, Delivery, Office, Shipment, TrackingEventRow
from courier.domain import text
from courier.domain.exception_kinds import ExceptionKind
from courier.domain.scans import scan_key
from courier.domain.states import STATUS_RANK, DeliveryState, next_status
from courier.domain.transit import courier_name
from courier.domain.watch import next_pickup_slot, next_poll_at
from courier.services import audit, handover, items, lifecycle, notices, pod, watch

log = structlog.get_logger()

# Couriers that push are still polled now and then: a lost push must not stall a parcel.
PUSH_FALLBACK_FACTOR = 4
_TAKEN_BY_COURIER = frozenset(
    {
        Status.PICKED_UP,
        Status.IN_TRANSIT,
        Status.OUT_FOR_DELIVERY,
        Status.DELIVERY_FAILED,
        Status.DELIVERED,
        Status.RETURNING,
        Status.RETURNED,
        Status.LOST,
    }
)


@dataclass
class Applied:
    """What one call did. ``before``/``after`` are the shipment's status around it."""

    before: Status
    after: Status
    stored: int = 0
    duplicates: int = 0
    unmapped: int = 0
    proof_id: int | None = None  # set when this call recorded the delivery

    @property
    def changed(self) -> bool:
        return self.before is not self.after


def event_key(shipment: Shipment, event: TrackingEvent) -> str:
    """The scan's key, scoped to the shipment (couriers may reuse waybills over years): the
    same for the push and the poll copy of one scan, whatever words each used."""
    return scan_key(
        shipment.id,
        event.status,
        event.occurred_at,
        event.location,
        raw_code=event.raw_code,
        raw_text=event.raw_text,
    )


# what the applicant is told when the shipment moves (delivered: the handover asks to confirm)
_TOLD = {
    Status.OUT_FOR_DELIVERY: "applicant_out_for_delivery",
    Status.DELIVERY_FAILED: "applicant_delivery_failed",
    Status.RETURNED: "applicant_returned",
}

_ATTEMPTS_OVER = frozenset(
    {Status.DELIVERED, Status.RETURNING, Status.RETURNED, Status.LOST, Status.CANCELLED}
)


def poll_time(
    status: Status,
    last_event_at: datetime | None,
    now: datetime,
    slots: Sequence[time],
    *,
    pushes: bool = False,
) -> datetime | None:
    """The shipment's next poll: the domain's adaptive schedule, stretched for pushing couriers
    (their pushes carry the news; polling is only the safety net)."""
    slot = next_pickup_slot(now, slots) if status is Status.BOOKED else None
    when = next_poll_at(status, last_event_at, now, slot)
    if when is None or not pushes:
        return when
    return now + (when - now) * PUSH_FALLBACK_FACTOR


async def apply_events(
    session: AsyncSession,
    shipment: Shipment,
    events: Sequence[TrackingEvent],
    *,
    source: str,
    now: datetime,
    pushes: bool = False,
) -> Applied:
    """Store ``events`` (this shipment's) and move the shipment forward; see the module doc."""
    before = Status(shipment.status)
    applied = Applied(before=before, after=before)
    # one round trip for the delivery, its office and its application: the gets below (and
    # items.personal_values) then find them in the session
    (
        await session.execute(
            select(Delivery, Office, Application)
            .join(Office, Office.id == Delivery.office_id)
            .outerjoin(Application, Application.id == Delivery.application_id)
            .where(Delivery.id == shipment.delivery_id)
        )
    ).all()
    delivery = await session.get(Delivery, shipment.delivery_id)
    if delivery is None:  # pragma: no cover - a foreign key guarantees it
        raise LookupError(f"shipment {shipment.id} has no delivery")
    office = await session.get(Office, delivery.office_id)
    known = await items.personal_values(session, delivery)
    current = before
    last_seen = shipment.last_event_at
    for event in sorted((storable(e, known) for e in events), key=lambda e: e.occurred_at):
        target = next_status(current, event.status)
        late = last_seen is not None and event.occurred_at < last_seen
        if target is not current and late and STATUS_RANK[target] <= STATUS_RANK[current]:
            target = current  # an older scan may not flip between equal ranks
        values = _row(shipment, event, source, now, target is not current)
        row_id = await items.insert_ignore(session, TrackingEventRow, values)
        if row_id is None:
            applied.duplicates += 1
            await _keep_other_copy(session, values)
            continue
        applied.stored += 1
        if last_seen is None or event.occurred_at > last_seen:
            last_seen = event.occurred_at
        if event.status is None:
            applied.unmapped += 1
            await _unmapped(session, shipment, delivery, event, now)
        if target is not current:
            proof_id = await _status_changed(
                session, shipment, delivery, current, target, event, row_id, now
            )
            applied.proof_id = applied.proof_id or proof_id
            current = target
    shipment.last_event_at = last_seen
    shipment.next_poll_at = poll_time(
        current, last_seen, now, lifecycle.pickup_slots(office), pushes=pushes
    )
    shipment.updated_at = now
    applied.after = current
    if applied.stored:
        log.info(
            "tracking_applied",
            shipment_id=shipment.id,
            source=source,
            stored=applied.stored,
            duplicates=applied.duplicates,
            unmapped=applied.unmapped,
            before=before.value,
            after=current.value,
        )
    return applied


def _storable_raw(node: Any) -> Any:
    if isinstance(node, str):
        return text.sanitise(node)
    if isinstance(node, dict):
        return {text.sanitise(str(k)): _storable_raw(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_storable_raw(v) for v in node]
    return node


def storable(event: TrackingEvent, known: Sequence[str]) -> TrackingEvent:
    """A courier's event as it may be stored and shown (courier.domain.text): every text
    storable (no lone surrogate, no control character), and the texts that reach exception
    items, a delivery's reason and the applicant's page (the problem reason, the location)
    without the names, phones and streets they may carry. The raw text and payload stay whole
    (evidence, on the dispatcher's delivery view only); the receiver's name goes to the proof."""
    receiver = text.sanitise(event.receiver_name, multiline=False)
    hidden = [*known, receiver]
    return replace(
        event,
        raw_code=text.sanitise(event.raw_code, multiline=False),
        raw_text=text.sanitise(event.raw_text),
        location=text.mask_personal(event.location, hidden),
        receiver_name=receiver,
        relation=text.sanitise(event.relation, multiline=False),
        reason=text.mask_personal(event.reason, hidden) if event.reason else "",
        raw=_storable_raw(event.raw),
    )


def _row(
    shipment: Shipment, event: TrackingEvent, source: str, now: datetime, moved: bool
) -> dict[str, Any]:
    return {
        "shipment_id": shipment.id,
        "source": source,
        "raw_code": event.raw_code[:64],
        "raw_text": event.raw_text,
        "status": event.status.value if event.status is not None else None,
        "occurred_at": event.occurred_at,
        "received_at": now,
        "location": event.location[:120],
        "applied": moved,
        "raw": dict(event.raw),
        "other_raws": [],
        "dedupe_key": event_key(shipment, event),
    }


async def _keep_other_copy(session: AsyncSession, values: dict[str, Any]) -> None:
    """A scan already stored came again: keep its raw form when this source is new for it (the
    poll copy beside the push copy), once per source, so re-sent pushes do not grow the row."""
    row = await session.scalar(
        select(TrackingEventRow).where(TrackingEventRow.dedupe_key == values["dedupe_key"])
    )
    if row is None:  # pragma: no cover - the insert just found it
        return
    seen = {row.source, *(str(o.get("source")) for o in row.other_raws)}
    if values["source"] in seen:
        return
    copy = {k: values[k] for k in ("source", "raw_code", "raw_text", "raw", "location")}
    copy["received_at"] = values["received_at"].isoformat()
    row.other_raws = [*row.other_raws, copy]


async def _unmapped(
    session: AsyncSession,
    shipment: Shipment,
    delivery: Delivery,
    event: TrackingEvent,
    now: datetime,
) -> None:
    code_key = hashlib.sha256(f"{event.raw_code}|{event.raw_text}".encode()).hexdigest()[:24]
    await items.open_exception(
        session,
        office_id=delivery.office_id,
        delivery_id=delivery.id,
        shipment_id=shipment.id,
        kind=ExceptionKind.UNMAPPED_CODE,
        detail=f"{shipment.courier_code} sent code {text.mask_personal(event.raw_code)!r} that "
        "the status table "
        "does not know; the shipment's status was left unchanged",
        dedupe_key=f"unmapped:{shipment.id}:{code_key}",
        now=now,
    )


async def _status_changed(
    session: AsyncSession,
    shipment: Shipment,
    delivery: Delivery,
    current: Status,
    target: Status,
    event: TrackingEvent,
    row_id: int,
    now: datetime,
) -> int | None:
    """Apply one forward move and its consequences; the proof id when it was a delivery."""
    actor = f"courier:{shipment.courier_code}"
    shipment.status = target.value
    shipment.status_reason = event.reason or None
    audit.record(
        session,
        at=now,
        actor=actor,
        action="shipment.status",
        entity="shipment",
        entity_id=shipment.id,
        office_id=delivery.office_id,
        before={"status": current.value},
        after={"status": target.value, "raw_code": event.raw_code, "tracking_event": row_id},
    )
    # a failed attempt asks staff to reach the applicant while the courier tries again; once
    # the attempts are over (delivered, or on the way back) the item has nothing left to ask
    moving = ("stuck", "return_overdue")
    settled = (*moving, "delivery_failed") if target in _ATTEMPTS_OVER else moving
    await items.resolve_exceptions(
        session,
        delivery_id=delivery.id,
        kinds=settled,
        by=actor,
        resolution=f"moved on: {target.value}",
        now=now,
    )
    if current in (Status.BOOKING, Status.BOOKED) and target in _TAKEN_BY_COURIER:
        await lifecycle.record_custody(
            session,
            delivery_id=delivery.id,
            shipment_id=shipment.id,
            holder="courier",
            holder_ref=shipment.courier_code,
            occurred_at=event.occurred_at,
            evidence={"tracking_event_id": row_id, "raw_code": event.raw_code},
            recorded_by=actor,
            now=now,
        )
    told = _TOLD.get(target)
    if told is not None:
        facts = {"courier": courier_name(shipment.courier_code), "waybill": shipment.waybill}
        if target is Status.RETURNED:
            facts.update(notices.deadline_facts(delivery))
        await notices.queue(session, told, delivery, now=now, key=row_id, facts=facts)
    if target is Status.DELIVERED:
        return await _delivered(session, shipment, delivery, event, row_id, now)
    if target is Status.RETURNED:
        lifecycle.move_delivery(
            session,
            delivery,
            DeliveryState.RETURNED,
            actor=actor,
            now=now,
            reason=event.reason or "returned to the office by the courier",
        )
        await watch.on_returned(session, delivery, shipment, now=now)
    elif target is Status.DELIVERY_FAILED:
        await items.open_exception(
            session,
            office_id=delivery.office_id,
            delivery_id=delivery.id,
            shipment_id=shipment.id,
            kind=ExceptionKind.DELIVERY_FAILED,
            detail="the courier's delivery attempt failed"
            + (f": {event.reason}" if event.reason else ""),
            dedupe_key=f"failed:{shipment.id}",
            now=now,
        )
    elif target in (Status.LOST, Status.CANCELLED):
        reason = f"courier reports the shipment {target.value}"
        lifecycle.move_delivery(
            session, delivery, DeliveryState.NEEDS_ATTENTION, actor=actor, now=now, reason=reason
        )
        await items.open_exception(
            session,
            office_id=delivery.office_id,
            delivery_id=delivery.id,
            shipment_id=shipment.id,
            kind=ExceptionKind(f"shipment_{target.value}"),
            detail=reason,
            dedupe_key=f"{target.value}:{shipment.id}",
            now=now,
        )
    return None


async def _delivered(
    session: AsyncSession,
    shipment: Shipment,
    delivery: Delivery,
    event: TrackingEvent,
    row_id: int,
    now: datetime,
) -> int:
    actor = f"courier:{shipment.courier_code}"
    application = await session.get(Application, delivery.application_id)
    applicant_name = application.applicant_name if application is not None else ""
    proof = await pod.record_proof(session, shipment, event, now=now)
    held_by = handover.holder_for(proof, applicant_name)
    await lifecycle.record_custody(
        session,
        delivery_id=delivery.id,
        shipment_id=shipment.id,
        holder=held_by,
        holder_ref=proof.relation_kind,
        occurred_at=event.occurred_at,
        evidence={"tracking_event_id": row_id, "proof_id": proof.id},
        recorded_by=actor,
        now=now,
    )
    lifecycle.move_delivery(session, delivery, DeliveryState.DELIVERED, actor=actor, now=now)
    await handover.on_delivered(
        session, delivery, shipment, proof, applicant_name=applicant_name, now=now
    )
    return proof.id


async def lock_shipment(session: AsyncSession, shipment_id: int) -> Shipment | None:
    """The shipment row, locked for this transaction (a no-op on SQLite: writers serialise)."""
    result = await session.execute(
        select(Shipment).where(Shipment.id == shipment_id).with_for_update()
    )
    return result.scalar_one_or_none()


async def find_shipment(session: AsyncSession, courier_code: str, waybill: str) -> Shipment | None:
    """The latest shipment with this waybill at this courier, locked."""
    result = await session.execute(
        select(Shipment)
        .where(Shipment.courier_code == courier_code, Shipment.waybill == waybill)
        .order_by(Shipment.id.desc())
        .limit(1)
        .with_for_update()
    )
    return result.scalar_one_or_none()
