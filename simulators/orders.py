"""The simulators' order book: every accepted order with its planned life, and every create
attempt counted per reference, so "no reference ever got a second order" is proved by counting."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from core.clock import WIB, Clock
from simulators.faults import FaultTable
from simulators.lifecycle import DEFAULT_ORIGIN_REGENCY, Step, StepKind, plan_lifecycle
from simulators.variations import Variations


@dataclass
class SimOrder:
    reference: str
    waybill: str
    created_at: datetime
    destination_regency_code: str
    steps: list[Step]
    cancelled_at: datetime | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    def visible_steps(self, now: datetime) -> list[Step]:
        """Steps that have happened by ``now``; nothing after a cancel."""
        cutoff = now if self.cancelled_at is None else min(now, self.cancelled_at)
        return [s for s in self.steps if s.at <= cutoff]

    def current(self, now: datetime) -> Step | None:
        seen = self.visible_steps(now)
        return seen[-1] if seen else None

    def picked_up(self, now: datetime) -> bool:
        return any(s.kind is not StepKind.BOOKED for s in self.visible_steps(now))


@dataclass
class Traffic:
    """Every courier API request the simulator received (the control API not included), counted
    per second and per WIB day of its clock: what a courier enforcing a contracted rate and a
    daily quota would count."""

    per_second: Counter[int] = field(default_factory=Counter)  # epoch second -> requests
    per_day: Counter[str] = field(default_factory=Counter)  # WIB date (ISO) -> requests

    def count(self, now: datetime) -> None:
        self.per_second[int(now.timestamp())] += 1
        self.per_day[now.astimezone(WIB).date().isoformat()] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": sum(self.per_day.values()),
            "max_per_second": max(self.per_second.values(), default=0),
            "per_second": {str(k): v for k, v in sorted(self.per_second.items())},
            "per_day": dict(sorted(self.per_day.items())),
        }

    def clear(self) -> None:
        self.per_second.clear()
        self.per_day.clear()


@dataclass
class SimState:
    clock: Clock
    orders: dict[str, SimOrder] = field(default_factory=dict)  # by our reference
    create_counts: Counter[str] = field(default_factory=Counter)  # every create attempt
    calls: Counter[str] = field(default_factory=Counter)  # every request, by endpoint
    traffic: Traffic = field(default_factory=Traffic)  # every API request, per second and day
    faults: FaultTable = field(default_factory=FaultTable)
    variations: Variations = field(default_factory=Variations)
    forced_outcomes: dict[str, str] = field(default_factory=dict)  # reference -> outcome
    link_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    seed: str = "sim"  # lifecycle seed prefix: plan seed = f"{seed}:{reference}"
    pickup_slots: tuple[time, ...] = (time(10), time(15))
    origin_regency_code: str = DEFAULT_ORIGIN_REGENCY
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # set: stop holding replies

    def by_waybill(self, waybill: str) -> SimOrder | None:
        for order in self.orders.values():
            if order.waybill == waybill:
                return order
        return None

    def plan(
        self, reference: str, booked_at: datetime, destination_regency_code: str
    ) -> list[Step]:
        steps = plan_lifecycle(
            booked_at=booked_at,
            destination_regency_code=destination_regency_code,
            seed=f"{self.seed}:{reference}",
            outcome=self.forced_outcomes.get(reference),
            pickup_slots=self.pickup_slots,
            origin_regency_code=self.origin_regency_code,
        )
        return self.variations.shape_plan(reference, steps)

    def add_order(
        self,
        reference: str,
        waybill: str,
        destination_regency_code: str,
        payload: Mapping[str, Any] | None = None,
    ) -> SimOrder:
        """Record an accepted create (the caller has counted it and checked for duplicates)."""
        now = self.clock.now()
        order = SimOrder(
            reference=reference,
            waybill=waybill,
            created_at=now,
            destination_regency_code=destination_regency_code,
            steps=self.plan(reference, now, destination_regency_code),
            payload=dict(payload or {}),
        )
        self.orders[reference] = order
        return order
