"""The courier lost the passport: the dispatcher records the courier's report (issue 11,
Deliver 6).

The shipment becomes ``lost`` (or stays lost when the courier already said so), the custody
chain ends with the courier's report as evidence (holder ``lost``: nobody can hand it over
any more), the delivery is cancelled (a lost passport is never delivered: the applicant
applies for a replacement, DESIGN's "lost" path), every item that asked about the parcel is
resolved with the report number, and the applicant is told through the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import structlog
from sqlalchemy import select

from adapters import registry
from core.status import Status
from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import OPEN_SHIPMENT_STATUSES, Delivery, Shipment
from courier.domain.exception_kinds import ExceptionKind
from courier.domain.states import RETURNABLE_BY_STAFF, DeliveryState, check_status_move
from courier.services import audit, items, lifecycle, notices
from courier.services.errors import Kind, ServiceError
from courier.services.staff import Caller

log = structlog.get_logger()

# the items a lost report answers
_ANSWERED = tuple(
    k.value
    for k in (
        ExceptionKind.SHIPMENT_LOST,
        ExceptionKind.STUCK,
        ExceptionKind.RETURN_OVERDUE,
        ExceptionKind.DELIVERY_FAILED,
        ExceptionKind.DEADLINE_WARNING,
    )
)


@dataclass(frozen=True, slots=True)
class LostReport:
    number: str
    reported_on: date
    text: str


@dataclass(frozen=True, slots=True)
class MarkedLost:
    delivery_id: int
    shipment_id: int
    shipment_status: str
    delivery_state: str
    items_resolved: int


async def mark_lost(
    ctx: AppContext, caller: Caller, delivery_id: int, report: LostReport
) -> MarkedLost:
    """Record the courier's loss report. Not found outside the caller's office; conflict when
    no shipment of the delivery ever left with the courier (a passport still at the office is
    not lost by a courier) or the delivery is already closed."""
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        delivery = await session.get(Delivery, delivery_id, with_for_update=True)
        if delivery is None or delivery.office_id != caller.office_id:
            raise ServiceError(Kind.NOT_FOUND, "unknown_delivery", "no such delivery")
        shipment = await session.scalar(
            select(Shipment)
            .where(
                Shipment.delivery_id == delivery.id,
                Shipment.status.in_((*OPEN_SHIPMENT_STATUSES, Status.LOST.value)),
            )
            .order_by(Shipment.attempt_no.desc())
            .limit(1)
            .with_for_update()
        )
        before = Status(shipment.status) if shipment is not None else None
        if shipment is None or (before is not Status.LOST and before not in RETURNABLE_BY_STAFF):
            raise ServiceError(
                Kind.CONFLICT,
                "not_with_courier",
                "no shipment of this delivery is with the courier: only a parcel the courier "
                "picked up can be lost by it"
                + (f" (the shipment is {shipment.status})" if shipment is not None else ""),
            )
        if delivery.state not in (
            DeliveryState.SHIPPING.value,
            DeliveryState.NEEDS_ATTENTION.value,
        ):
            raise ServiceError(
                Kind.CONFLICT,
                "delivery_closed",
                f"a delivery in state {delivery.state} cannot be marked lost",
            )
        assert before is not None
        if before is not Status.LOST:
            check_status_move(before, Status.LOST)
        actor = caller.actor
        evidence = {
            "event": "lost",
            "report_number": report.number,
            "reported_on": report.reported_on.isoformat(),
            "report": report.text,
        }
        shipment.status = Status.LOST.value
        shipment.status_reason = f"lost: the courier's report {report.number}"
        shipment.next_poll_at = None
        shipment.lease_owner = None
        shipment.lease_until = None
        shipment.updated_at = now
        audit.record(
            session,
            at=now,
            actor=actor,
            action="shipment.lost",
            entity="shipment",
            entity_id=shipment.id,
            office_id=delivery.office_id,
            before={"status": before.value},
            after={"status": Status.LOST.value, **evidence},
            reason=report.text,
        )
        await lifecycle.record_custody(
            session,
            delivery_id=delivery.id,
            shipment_id=shipment.id,
            holder="lost",
            holder_ref=shipment.courier_code,
            occurred_at=now,
            evidence=evidence,
            recorded_by=actor,
            now=now,
        )
        lifecycle.move_delivery(
            session,
            delivery,
            DeliveryState.CANCELLED,
            actor=actor,
            now=now,
            reason=f"passport lost by the courier (report {report.number})",
        )
        resolved = await items.resolve_exceptions(
            session,
            delivery_id=delivery.id,
            kinds=_ANSWERED,
            by=actor,
            resolution=f"marked lost with the courier's report {report.number}",
            now=now,
        )
        await notices.queue(
            session,
            "applicant_passport_lost",
            delivery,
            now=now,
            key=shipment.id,
            facts={"courier": registry.name(shipment.courier_code)},
        )
        log.info("shipment.marked_lost", delivery_id=delivery.id, shipment_id=shipment.id)
        return MarkedLost(delivery.id, shipment.id, shipment.status, delivery.state, resolved)
