"""What a chaos run must leave behind, read from the database, the simulators' order books and
the processes' logs once every delivery has come to rest.

Each check returns a count of violations (0 when the invariant holds) and, for the report, a
few examples; :func:`verify` runs them all."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chaos.seed import FAMILY, GIVEN, MIDDLE, STREETS, Applicant
from core.status import Status
from courier.db.engine import SessionFactory
from courier.db.models import (
    OPEN_SHIPMENT_STATUSES,
    Application,
    AuditEntry,
    CustodyEvent,
    Delivery,
    ExceptionItem,
    Handover,
    Office,
    Proof,
    Shipment,
)
from courier.domain.states import DELIVERY_MOVES, FINAL_DELIVERY_STATES, STATUS_RANK, DeliveryState
from courier.domain.watch import stuck_after
from courier.services.lifecycle import pickup_slots
from simulators.orders import SimState

#: where a delivery may be when the run is over (needs_attention only with an open item)
AT_REST = {s.value for s in FINAL_DELIVERY_STATES} | {"delivered", "needs_attention"}
#: statuses that mean the courier took the parcel: custody passed to the courier
TAKEN = {"picked_up", "in_transit", "out_for_delivery", "delivery_failed", "returning",
         "delivered", "returned"}  # fmt: skip
EXAMPLES = 5


@dataclass
class Outcome:
    figures: dict[str, object] = field(default_factory=dict)
    violations: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def count(self, name: str, found: Sequence[str]) -> None:
        self.violations[name] = len(found)
        if found:
            self.examples[name] = list(found[:EXAMPLES])

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())


def resting(state: str, open_kinds: set[str]) -> bool:
    """Final, delivered (waiting for the applicant), with a person (an open item), or silent
    on its way with an item saying so: a return that never gets its final scan, or a parcel
    Pos Indonesia lost (Pos shows no scan for a loss), stays ``shipping`` for good, and only a
    person can find the envelope."""
    if state == "needs_attention":
        return bool(open_kinds)
    if state == "shipping":
        return bool(open_kinds & {"return_overdue", "stuck"})
    return state in AT_REST


async def at_rest(sessions: SessionFactory) -> tuple[int, int]:
    """(deliveries at rest, all deliveries)."""
    async with sessions() as session:
        found = await session.execute(select(Delivery.id, Delivery.state))
        states = {d: s for d, s in found.all()}
        kinds = await _open_kinds(session)
    return sum(resting(s, kinds.get(d, set())) for d, s in states.items()), len(states)


async def _open_kinds(session: AsyncSession) -> dict[int, set[str]]:
    kinds: dict[int, set[str]] = defaultdict(set)
    rows = await session.execute(
        select(ExceptionItem.delivery_id, ExceptionItem.kind).where(
            ExceptionItem.resolved_at.is_(None), ExceptionItem.delivery_id.is_not(None)
        )
    )
    for delivery_id, kind in rows.all():
        if delivery_id is not None:
            kinds[delivery_id].add(kind)
    return kinds


def duplicate_orders(sims: Mapping[str, SimState]) -> list[str]:
    """Orders for one application open at once at one courier (a reference is the office,
    the application and a two-digit attempt number; the simulators refuse a reference twice)."""
    found = []
    for courier, state in sims.items():
        live = Counter(ref[:-2] for ref, o in state.orders.items() if o.cancelled_at is None)
        found += [f"{courier} {app}: {n} orders" for app, n in live.items() if n > 1]
    return found


async def verify(
    sessions: SessionFactory,
    sims: Mapping[str, SimState],
    people: Sequence[Applicant],
    logs: Iterable[Path],
    now: datetime,
) -> Outcome:
    out = Outcome()
    async with sessions() as session:
        deliveries = {
            no: d
            for no, d in (
                await session.execute(
                    select(Application.application_no, Delivery).join(
                        Delivery, Delivery.application_id == Application.id
                    )
                )
            ).all()
        }
        ships = list(await session.scalars(select(Shipment).order_by(Shipment.id)))
        items = list(await session.scalars(select(ExceptionItem)))
        audit = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        custody = list(await session.scalars(select(CustodyEvent)))
        handovers = list(await session.scalars(select(Handover)))
        proofs = {p.shipment_id for p in await session.scalars(select(Proof))}
        offices = {o.id: o for o in await session.scalars(select(Office))}

    by_state = Counter(d.state for d in deliveries.values())
    out.figures["deliveries"] = len(people)
    out.figures["by state"] = ", ".join(f"{k} {v}" for k, v in sorted(by_state.items()))
    out.figures["shipments"] = len(ships)
    out.figures["orders at couriers"] = sum(len(s.orders) for s in sims.values())
    out.figures["courier calls"] = sum(sum(s.calls.values()) for s in sims.values())
    out.figures["open items"] = ", ".join(
        f"{k} {v}"
        for k, v in sorted(Counter(i.kind for i in items if i.resolved_at is None).items())
    )

    out.count("duplicate orders", duplicate_orders(sims))
    out.count("orders unknown to the database", _orphan_orders(sims, ships, items))
    out.count("deliveries lost", _lost(people, deliveries, items))
    out.count("status regressions", _regressions(audit))
    out.count("unattended past limit", _unattended(ships, items, offices, deliveries, now))
    out.count("missing audit or custody", _records(ships, audit, custody, handovers, proofs))
    logs = list(logs)
    out.figures["error log lines"] = ", ".join(
        f"{k} {v}" for k, v in sorted(_error_lines(logs).items())
    )
    out.count("personal data in logs", _personal_data(people, logs))
    return out


def _orphan_orders(
    sims: Mapping[str, SimState], ships: Sequence[Shipment], items: Sequence[ExceptionItem]
) -> list[str]:
    """An order the courier made that the database never learned of (a lost reply) and that no
    person was asked about: the courier would carry a parcel nobody tracks. (When the courier
    cannot be asked, e.g. J&T without getOrders, the booking goes to a person: that is right.)"""
    known = {(s.courier_code, s.client_reference): s for s in ships}
    asked = {i.shipment_id for i in items if i.resolved_at is None}
    found = []
    for courier, state in sims.items():
        for ref, order in state.orders.items():
            ship = known.get((courier, ref))
            if order.cancelled_at is not None or (ship and ship.waybill == order.waybill):
                continue
            if ship is None or ship.id not in asked:
                held = ship.waybill if ship else "no shipment"
                found.append(f"{courier} {ref} ({order.waybill}): the database has {held}")
    return found


def _lost(
    people: Sequence[Applicant], deliveries: Mapping[str, Delivery], items: Sequence[ExceptionItem]
) -> list[str]:
    kinds: dict[int | None, set[str]] = defaultdict(set)
    for item in items:
        if item.resolved_at is None:
            kinds[item.delivery_id].add(item.kind)
    found = []
    for p in people:
        d = deliveries.get(p.application_no)
        if d is None:
            found.append(f"{p.application_no}: no delivery")
        elif not resting(d.state, kinds[d.id]):
            found.append(f"{p.application_no}: {d.state}, open items {sorted(kinds[d.id])}")
    return found


def _regressions(audit: Sequence[AuditEntry]) -> list[str]:
    """Every recorded move: shipments never lose rank, deliveries only move as allowed, and
    each move starts where the previous one of the same row ended."""
    found = []
    last: dict[tuple[str, int], str] = {}
    for entry in audit:
        key = {"shipment": "status", "delivery": "state"}.get(entry.entity)
        if key is None or not entry.before or not entry.after:
            continue
        if key not in entry.before or key not in entry.after:
            continue
        before, after = str(entry.before[key]), str(entry.after[key])
        row = (entry.entity, entry.entity_id)
        where = f"{entry.entity} {entry.entity_id} ({entry.action}, audit {entry.id})"
        if row in last and last[row] != before:
            found.append(f"{where}: moved from {before}, but was {last[row]}")
        last[row] = after
        if entry.entity == "shipment":
            if STATUS_RANK[Status(after)] < STATUS_RANK[Status(before)]:
                found.append(f"{where}: {before} -> {after}")
        elif DeliveryState(after) not in DELIVERY_MOVES[DeliveryState(before)]:
            found.append(f"{where}: {before} -> {after} is not a delivery move")
    return found


def _unattended(
    ships: Sequence[Shipment],
    items: Sequence[ExceptionItem],
    offices: Mapping[int, Office],
    deliveries: Mapping[str, Delivery],
    now: datetime,
) -> list[str]:
    """Open shipments past their status's limit with no open item about them."""
    office_of = {d.id: d.office_id for d in deliveries.values()}
    watched = {i.shipment_id for i in items if i.resolved_at is None}
    found = []
    for s in ships:
        if s.status not in OPEN_SHIPMENT_STATUSES or s.id in watched:
            continue
        since = s.last_event_at or s.booked_at or s.created_at
        office = offices.get(office_of.get(s.delivery_id, -1))
        limit = stuck_after(Status(s.status), since, pickup_slots(office))
        if limit is not None and limit <= now:
            found.append(f"shipment {s.id} {s.status} since {since:%Y-%m-%d %H:%M}, limit {limit}")
    return found


def _records(
    ships: Sequence[Shipment],
    audit: Sequence[AuditEntry],
    custody: Sequence[CustodyEvent],
    handovers: Sequence[Handover],
    proofs: set[int],
) -> list[str]:
    """Each booking has its intent and its outcome in the audit log; each parcel the courier
    took has a custody event to the courier; each delivered one, a proof, a custody event to
    whoever received it and a handover."""
    actions: dict[int, set[str]] = defaultdict(set)
    reached: dict[int, set[str]] = defaultdict(set)
    for entry in audit:
        if entry.entity == "shipment":
            actions[entry.entity_id].add(entry.action)
            if entry.after and "status" in entry.after:
                reached[entry.entity_id].add(str(entry.after["status"]))
    holders: dict[int, set[str]] = defaultdict(set)
    for event in custody:
        if event.shipment_id is not None:
            holders[event.shipment_id].add(event.holder)
    handed = {h.shipment_id for h in handovers}
    found = []
    for s in ships:
        if "shipment.booking" not in actions[s.id]:
            found.append(f"shipment {s.id}: no audit of the booking intent")
        if s.waybill and not actions[s.id] & {"shipment.booked", "shipment.waybill_recorded"}:
            found.append(f"shipment {s.id}: waybill {s.waybill} without an audited booking")
        if reached[s.id] & TAKEN and "courier" not in holders[s.id]:
            found.append(f"shipment {s.id}: {s.status} but custody never passed to the courier")
        if s.status == "delivered":
            if s.id not in proofs:
                found.append(f"shipment {s.id}: delivered without a proof")
            if not holders[s.id] - {"office", "courier"}:
                found.append(f"shipment {s.id}: delivered, but nobody received custody")
            if s.id not in handed:
                found.append(f"shipment {s.id}: delivered without a handover")
    return found


def _personal_data(people: Sequence[Applicant], logs: Iterable[Path]) -> list[str]:
    """Every text shaped like a seeded name, phone, street or passport number (whatever its
    case) is looked up among the seeded ones: one pass over each log, however many people."""
    needles = {text.lower(): p.application_no for p in people for text in p.personal_data()}
    found = []
    for path in logs:
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in PERSONAL_SHAPES.finditer(text):
            application = needles.get(match.group(0).lower())
            if application is not None:
                found.append(f"{path.name}: {match.group(0)!r} (application {application})")
    return found


ERROR_LINE = re.compile(r'"event": "([^"]+)"[^\n]*"level": "error"')


def _error_lines(logs: Iterable[Path]) -> Counter[str]:
    """Error-level log lines by event: not violations in themselves (a courier's 5xx is logged
    as an error), but where to look first."""
    found: Counter[str] = Counter()
    for path in logs:
        found.update(ERROR_LINE.findall(path.read_text(encoding="utf-8", errors="replace")))
    return found


def _words(names: Sequence[str]) -> str:
    return "(?:" + "|".join(re.escape(n) for n in names) + ")"


PERSONAL_SHAPES = re.compile(
    rf"{_words(GIVEN)} {_words(MIDDLE)} {_words(FAMILY)}"
    rf"|{_words(STREETS)} Gg\. \d+ No\. \d+"
    r"|\+?\d{9,15}"
    r"|\bE\d{7}\b",
    re.IGNORECASE,
)
