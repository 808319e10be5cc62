"""The dispatch board: what an office has under way, at a glance (the console's ``/`` and
``GET /api/v1/board``).

Five aggregates, each one indexed query, all scoped to the caller's office:

* deliveries by state, for the states still under way (final ones only grow, and a count of a
  year of handovers helps nobody act): ``ix_deliveries_open_state`` (office_id, state), partial
  on the states under way: a few percent of the table, counted from the index;
* open shipments by courier and status, of the deliveries under way: those deliveries
  (``ix_deliveries_open_state``), each one's open shipment from ``ix_shipments_open_courier``
  (delivery_id, courier_code, status; partial on the open statuses: no table read);
* today's pickup slots (the office's ``pickup_slots``, WIB) with the shipments booked and waiting
  for the courier's pickup;
* deadlines at risk: deliveries under way whose collect-by falls within
  :data:`AT_RISK_WITHIN`, the nearest first (``ix_deliveries_open_collect_by`` (office_id,
  collect_by, id), partial on the states under way: read in order, stopped at the limit);
* open exception items by kind, the oldest first (``ix_exception_items_open``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from core.clock import WIB
from courier.context import AppContext
from courier.db.models import (
    OPEN_SHIPMENT_STATUSES,
    UNDER_WAY_STATES,
    Application,
    Delivery,
    ExceptionItem,
    Office,
    Shipment,
)
from courier.domain.exception_kinds import NEXT_STEPS, STATE_TEXTS, ExceptionKind, Text
from courier.domain.states import DeliveryState
from courier.services import lifecycle
from courier.services.staff import Caller

AT_RISK_WITHIN = timedelta(days=3)
AT_RISK_LIMIT = 20


@dataclass(frozen=True, slots=True)
class StateCount:
    state: str
    text: Text
    count: int


@dataclass(frozen=True, slots=True)
class CourierCount:
    courier: str
    status: str
    count: int


@dataclass(frozen=True, slots=True)
class Slot:
    at: datetime  # today's slot, WIB
    passed: bool
    waiting: int  # shipments booked and not yet picked up (every courier of the office)


@dataclass(frozen=True, slots=True)
class AtRisk:
    delivery_id: int
    application_no: str
    state: str
    collect_by: datetime
    overdue: bool


@dataclass(frozen=True, slots=True)
class KindCount:
    kind: str
    next_step: Text
    count: int
    oldest: datetime


@dataclass(frozen=True, slots=True)
class Board:
    office_code: str
    office_name: str
    at: datetime
    by_state: tuple[StateCount, ...]
    by_courier: tuple[CourierCount, ...]
    slots: tuple[Slot, ...]
    at_risk: tuple[AtRisk, ...]
    exceptions: tuple[KindCount, ...]

    @property
    def open_exceptions(self) -> int:
        return sum(k.count for k in self.exceptions)


def _kind_text(kind: str) -> Text:
    try:
        return NEXT_STEPS[ExceptionKind(kind)]
    except ValueError:
        return Text(kind, kind)


async def board(ctx: AppContext, caller: Caller) -> Board:
    now = ctx.clock.now()
    office_id = caller.office_id
    async with ctx.sessions() as session:
        office = await session.get_one(Office, office_id)
        states = dict(
            (
                await session.execute(
                    select(Delivery.state, func.count())
                    .where(Delivery.office_id == office_id, Delivery.state.in_(UNDER_WAY_STATES))
                    .group_by(Delivery.state)
                )
            ).all()
        )
        couriers = (
            await session.execute(
                select(Shipment.courier_code, Shipment.status, func.count())
                .select_from(Delivery)
                .join(Shipment, Shipment.delivery_id == Delivery.id)
                .where(
                    Delivery.office_id == office_id,
                    Delivery.state.in_(UNDER_WAY_STATES),
                    Shipment.status.in_(OPEN_SHIPMENT_STATUSES),
                )
                .group_by(Shipment.courier_code, Shipment.status)
                .order_by(Shipment.courier_code, Shipment.status)
            )
        ).all()
        risky = (
            await session.execute(
                select(Delivery.id, Application.application_no, Delivery.state, Delivery.collect_by)
                .join(Application, Application.id == Delivery.application_id)
                .where(
                    Delivery.office_id == office_id,
                    Delivery.state.in_(UNDER_WAY_STATES),
                    Delivery.collect_by.is_not(None),
                    Delivery.collect_by <= now + AT_RISK_WITHIN,
                )
                .order_by(Delivery.collect_by, Delivery.id)  # ix_deliveries_open_collect_by
                .limit(AT_RISK_LIMIT)
            )
        ).all()
        kinds = (
            await session.execute(
                select(ExceptionItem.kind, func.count(), func.min(ExceptionItem.opened_at))
                .where(ExceptionItem.office_id == office_id, ExceptionItem.resolved_at.is_(None))
                .group_by(ExceptionItem.kind)
            )
        ).all()
    waiting = sum(n for _, status, n in couriers if status == "booked")
    today = now.astimezone(WIB).date()
    slots = []
    for slot in lifecycle.pickup_slots(office):
        at = datetime.combine(today, slot, tzinfo=WIB)
        slots.append(Slot(at, at <= now, waiting))
    return Board(
        office_code=office.code,
        office_name=office.name,
        at=now,
        by_state=tuple(
            StateCount(s, STATE_TEXTS[DeliveryState(s)], int(states.get(s, 0)))
            for s in UNDER_WAY_STATES
        ),
        by_courier=tuple(CourierCount(c, s, int(n)) for c, s, n in couriers),
        slots=tuple(slots),
        at_risk=tuple(
            AtRisk(int(i), no, state, when, when <= now)
            for i, no, state, when in risky
            if when is not None
        ),
        exceptions=tuple(
            sorted(
                (KindCount(k, _kind_text(k), int(n), oldest) for k, n, oldest in kinds),
                key=lambda k: (k.oldest, k.kind),
            )
        ),
    )
