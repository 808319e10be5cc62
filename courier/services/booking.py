"""Booking: exactly one courier order per shipment attempt (invariant 1).

Three phases, each its own transaction around at most one courier call::

    1. intent   shipment row: status booking, deterministic client reference, lease   COMMIT
                delivery: queued -> shipping
    2. call     adapter.book(order with that reference)
    3. result   booked + waybill | booking_failed | left in booking for reconciliation COMMIT

A crash between 1 and 3 leaves a shipment in ``booking`` whose lease runs out. Whoever claims it
next *reconciles* by the same reference (:func:`reconcile_shipment`), as far as the courier
allows (``adapter.capabilities``). What to do after each courier answer is decided by the pure
table in courier/domain/booking_decision.py; this module only carries it out (I/O):

* it can ``find``: look the reference up; found → booked;
* not found, and the courier is known to refuse a reused reference (``dedupes_reference``,
  J&T): send the very same order again and read "duplicate reference" (``OutcomeUnknown``) as
  "it exists" and look again;
* it can neither find nor is known to dedupe (Pos Indonesia): the order is NEVER sent again
  unless the last create is known not to have reached the courier (connection refused, circuit
  open, rate limit, 401: ``Shipment.create_may_exist`` is False, and set back to True in a
  committed write before any resend). Otherwise the shipment stays in ``booking`` and the
  delivery goes to needs_attention at once, with an item asking staff to check the courier's
  portal for that reference.

A new reference is never minted for the same attempt; the partial unique indexes (one open
shipment per delivery, one reference per courier) back that up. An outcome still unknown after
``worker.max_reconciliations`` tries goes to a human (needs_attention + an exception item),
never to a second order.

Every write after the intent is a compare-and-set on ``lease_owner``: a worker whose lease was
taken over cannot overwrite the new owner's result.

Crash points for the chaos tests: with ``COURIER_TEST_CRASH_AT=before_book`` (intent committed,
courier not called) or ``after_book`` (courier answered, result not committed) the process
``os._exit(137)``s right there, exactly like a SIGKILL at that instant. Unset, it does nothing.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from adapters import registry
from adapters.base import (
    Address,
    AuthFailed,
    Booking,
    CourierAdapter,
    CourierError,
    CourierRejected,
    CourierUnavailable,
    DuplicateReference,
    NotSupported,
    NotUnderstood,
    OutcomeUnknown,
    Party,
    RateLimited,
    RequestNotBuilt,
    ShipmentOrder,
)
from core.backoff import exponential_backoff
from core.status import Status
from courier import metrics
from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import Application, Delivery, Office, Shipment
from courier.domain import text
from courier.domain.booking_decision import (
    Action,
    Courier,
    Decision,
    Event,
    Situation,
    Step,
    Why,
    decide,
)
from courier.domain.exception_kinds import ExceptionKind
from courier.domain.references import client_reference
from courier.domain.routing import NoRoute
from courier.domain.states import DeliveryState
from courier.services import audit, items, lifecycle, notices

log = structlog.get_logger()

CRASH_ENV = "COURIER_TEST_CRASH_AT"
DEFAULT_WEIGHT_KG = Decimal("0.2")  # a passport in a padded envelope
DEFAULT_DECLARED_VALUE = 650_000  # rupiah: the fee of a 10-year e-passport, what it costs to redo

FIRST_RETRY_DELAY = 30.0
MAX_RETRY_DELAY = 3600.0


@dataclass(frozen=True)
class Outcome:
    """What one booking job ended in. ``result`` is one of: booked, unknown, rejected,
    needs_attention, retry, lost_lease."""

    result: str
    shipment_id: int | None = None
    reference: str | None = None


def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os._exit(137)


def _actor(worker_id: str) -> str:
    return f"worker:{worker_id}"[:64]


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds (clock time) before trying a courier again: 30 s doubling to an hour, or the
    courier's own ``Retry-After`` when it gave one and it is longer."""
    delay = exponential_backoff(attempt, initial=FIRST_RETRY_DELAY, cap=MAX_RETRY_DELAY)
    return max(delay, retry_after or 0.0)


# --------------------------------------------------------------------------------------------
# The order (pure)


def _address(data: Mapping[str, Any], regency_code: str = "") -> Address:
    return Address(
        street=str(data.get("street", "")),
        village=str(data.get("village", "")),
        district=str(data.get("district", "")),
        regency=str(data.get("regency", "")),
        province=str(data.get("province", "")),
        postal_code=str(data.get("postal_code", "")),
        regency_code=str(data.get("regency_code") or regency_code),
        district_code=str(data.get("district_code", "")),
        note=str(data.get("note", "")),
    )


def _default_service(courier_code: str) -> str:
    """The service code when the settings name none (the courier's descriptor says which)."""
    found = registry.DESCRIPTORS.get(courier_code)
    return found.default_service if found else ""


def office_sender(office_name: str, sender: Mapping[str, Any]) -> Party:
    """The office as the courier's sender: its sender block, the office's name when the block
    names no contact. Also what configuring an office checks against the courier's limits."""
    return Party(
        name=str(sender.get("contact") or office_name),
        phone=str(sender.get("phone", "")),
        address=_address(sender),
    )


def build_order(
    *,
    reference: str,
    office: Office,
    application: Application,
    delivery: Delivery,
    courier_code: str,
    courier_settings: Mapping[str, Any],
) -> ShipmentOrder:
    """The courier order for one attempt. Same rows in, same order out: a reconciliation resends
    exactly what the first call sent."""
    return ShipmentOrder(
        reference=reference,
        sender=office_sender(office.name, dict(office.sender or {})),
        receiver=Party(
            name=application.applicant_name,
            phone=application.phone,
            address=_address(delivery.address or {}, delivery.destination_regency_code),
            email=str((delivery.address or {}).get("email", "")),
        ),
        weight_kg=Decimal(str(courier_settings.get("weight_kg", DEFAULT_WEIGHT_KG))),
        declared_value=int(courier_settings.get("declared_value", DEFAULT_DECLARED_VALUE)),
        service=str(courier_settings.get("service") or _default_service(courier_code)),
        description="DOKUMEN",
    )


# --------------------------------------------------------------------------------------------
# Shared writes: each written once


def _move_delivery(
    session: AsyncSession,
    delivery: Delivery,
    target: DeliveryState,
    *,
    now: datetime,
    actor: str,
    reason: str | None = None,
) -> None:
    """Checked and audited (courier/services/lifecycle.py). A refused move (staff cancelled or
    collected it meanwhile) leaves the delivery where a human put it; the shipment still
    records what happened."""
    moved = lifecycle.move_delivery(session, delivery, target, actor=actor, now=now, reason=reason)
    if not moved and delivery.state != target.value:
        log.info(
            "booking.delivery_stays",
            delivery_id=delivery.id,
            state=delivery.state,
            target=target.value,
        )


def _let_go(shipment: Shipment, now: datetime, *, reason: str | None) -> None:
    """This worker is done with the shipment for now: its lease ends here."""
    shipment.lease_owner = None
    shipment.lease_until = None
    shipment.status_reason = reason
    shipment.updated_at = now


async def _to_person(
    session: AsyncSession,
    delivery: Delivery,
    *,
    shipment_id: int | None,
    kind: ExceptionKind,
    reason: str,
    dedupe_key: str,
    now: datetime,
    actor: str,
) -> None:
    """The delivery goes to needs_attention with one exception item saying what to check."""
    _move_delivery(
        session, delivery, DeliveryState.NEEDS_ATTENTION, now=now, actor=actor, reason=reason
    )
    await items.open_exception(
        session,
        now=now,
        office_id=delivery.office_id,
        delivery_id=delivery.id,
        shipment_id=shipment_id,
        kind=kind,
        detail=reason,
        dedupe_key=dedupe_key,
    )


async def _held_shipment(
    session: AsyncSession, shipment_id: int, worker_id: str
) -> Shipment | None:
    """The shipment, if it is still in ``booking`` and still ours (compare-and-set guard)."""
    return await session.scalar(
        select(Shipment).where(
            Shipment.id == shipment_id,
            Shipment.lease_owner == worker_id,
            Shipment.status == Status.BOOKING.value,
        )
    )


# --------------------------------------------------------------------------------------------
# Results


async def _settle_booked(
    ctx: AppContext, shipment_id: int, worker_id: str, booking: Booking, how: str
) -> Outcome:
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        shipment = await _held_shipment(session, shipment_id, worker_id)
        if shipment is None:
            log.warning("booking.lease_lost", shipment_id=shipment_id, stage="booked")
            return Outcome("lost_lease", shipment_id)
        _let_go(shipment, now, reason=None)
        shipment.status = Status.BOOKED.value
        shipment.waybill = booking.waybill
        shipment.booked_at = now
        shipment.next_poll_at = now  # tracking takes it from here
        delivery = await session.get(Delivery, shipment.delivery_id)
        audit.record(
            session,
            at=now,
            actor=_actor(worker_id),
            action="shipment.booked",
            entity="shipment",
            entity_id=shipment.id,
            office_id=delivery.office_id if delivery else None,
            before={"status": Status.BOOKING.value},
            after={"status": Status.BOOKED.value, "waybill": booking.waybill},
            reason=how,
        )
        if delivery is not None:
            await notices.queue_booked(session, delivery, shipment, now=now)
        reference = shipment.client_reference
        courier_code = shipment.courier_code
    if how != _HOW[Step.CREATE]:
        metrics.count_reconciliation(courier_code, "found" if "found" in how else "resent")
    log.info(
        "booking.booked",
        shipment_id=shipment_id,
        reference=reference,
        waybill=booking.waybill,
        how=how,
    )
    return Outcome("booked", shipment_id, reference)


async def _settle_rejected(
    ctx: AppContext, shipment_id: int, worker_id: str, err: CourierRejected
) -> Outcome:
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        shipment = await _held_shipment(session, shipment_id, worker_id)
        if shipment is None:
            return Outcome("lost_lease", shipment_id)
        delivery = await session.get(Delivery, shipment.delivery_id)
        assert delivery is not None
        # the courier's words may quote the receiver's name, phone or street: masked before
        # they reach the item, the shipment's reason and the audit log
        said = text.mask_personal(err.reason, await items.personal_values(session, delivery))
        reason = f"{err.courier} refused the order ({err.code}): {said}"
        _let_go(shipment, now, reason=reason)
        shipment.status = Status.BOOKING_FAILED.value
        shipment.next_poll_at = None
        audit.record(
            session,
            at=now,
            actor=_actor(worker_id),
            action="shipment.booking_failed",
            entity="shipment",
            entity_id=shipment.id,
            office_id=delivery.office_id,
            before={"status": Status.BOOKING.value},
            after={"status": Status.BOOKING_FAILED.value},
            reason=reason,
        )
        await _to_person(
            session,
            delivery,
            shipment_id=shipment.id,
            kind=ExceptionKind.BOOKING_REJECTED,
            reason=reason,
            dedupe_key=f"booking_rejected:{shipment.id}",
            now=now,
            actor=_actor(worker_id),
        )
        reference = shipment.client_reference
    log.warning(
        "booking.rejected", shipment_id=shipment_id, reference=reference, error_code=err.code
    )
    return Outcome("rejected", shipment_id, reference)


_PERSON_KINDS = {
    Why.EXISTS: ExceptionKind.BOOKING_EXISTS,
    Why.NOT_UNDERSTOOD: ExceptionKind.ANSWER_NOT_UNDERSTOOD,
    Why.FAULT: ExceptionKind.BOOKING_FAULT,
}


def _person_reason(why: Why, courier: str, reference: str, count: int, note: str) -> str:
    """The item's reason, saying exactly what to check (the next step is the kind's,
    courier/domain/exception_kinds.py)."""
    name = registry.name(courier)
    if why is Why.UNVERIFIABLE:
        return (
            f"{name}: order {reference} may exist ({note}); the courier cannot be asked "
            "and a second send could make a second order"
        )
    if why is Why.EXISTS:
        return (
            f"{name} refused reference {reference} as already used, so the order exists; "
            f"read its waybill in the {name} portal and record it"
        )
    if why is Why.NOT_UNDERSTOOD:
        return f"{name}: {note}"
    if why is Why.FAULT:
        return (
            f"{reference}: the booking failed {count} times with an error in our code "
            f"({note}); check reference {reference} in the {name} portal"
        )
    if why is Why.OVERDUE:
        return (
            f"{reference}: no booking outcome within the booking deadline ({note}); check "
            f"reference {reference} in the {name} portal"
        )
    return f"{reference}: outcome of the booking still unknown after {count} reconciliations"


async def _settle_person(
    ctx: AppContext,
    intent: _Intent,
    worker_id: str,
    decision: Decision,
    note: str,
    raw: Any = None,
) -> Outcome:
    """Park a shipment whose outcome only a person can settle: it stays in ``booking`` (the
    order may exist), is never claimed again (``reconcile_count`` at the limit, no
    ``next_poll_at``), and its delivery goes to needs_attention with an item saying what to
    check (``booking_unknown``, ``booking_exists``, ``answer_not_understood``,
    ``booking_fault``). Staff settle it with :func:`courier.services.stuck_booking`."""
    now = ctx.clock.now()
    actor = _actor(worker_id)
    why = decision.why or Why.STILL_UNKNOWN
    async with transaction(ctx.sessions) as session:
        shipment = await _held_shipment(session, intent.shipment_id, worker_id)
        if shipment is None:
            return Outcome("lost_lease", intent.shipment_id)
        reference = shipment.client_reference
        if decision.counts:
            shipment.reconcile_count += 1
        reason = _person_reason(
            why, shipment.courier_code, reference, shipment.reconcile_count, note
        )
        shipment.reconcile_count = max(shipment.reconcile_count, ctx.settings.max_reconciliations)
        shipment.next_poll_at = None
        if decision.may_exist is not None:
            shipment.create_may_exist = decision.may_exist
        _let_go(shipment, now, reason=reason)
        delivery = await session.get(Delivery, shipment.delivery_id)
        assert delivery is not None
        kind = _PERSON_KINDS.get(why, ExceptionKind.BOOKING_UNKNOWN)
        await _to_person(
            session,
            delivery,
            shipment_id=shipment.id,
            kind=kind,
            reason=reason,
            dedupe_key=f"{kind.value}:{shipment.id}",
            now=now,
            actor=actor,
        )
        after: dict[str, Any] = {
            "reconcile_count": shipment.reconcile_count,
            "parked": True,
            "why": why.value,
        }
        if raw is not None:
            after["courier_answer"] = raw  # redacted by the adapter (adapters.base)
        audit.record(
            session,
            at=now,
            actor=actor,
            action="shipment.outcome_unknown",
            entity="shipment",
            entity_id=shipment.id,
            office_id=delivery.office_id,
            after=after,
            reason=reason,
        )
        courier_code = shipment.courier_code
    if why is Why.EXISTS:
        metrics.count_reconciliation(courier_code, "duplicate")
    log.warning(
        "booking.to_person", shipment_id=intent.shipment_id, reference=reference, why=why.value
    )
    return Outcome("needs_attention", intent.shipment_id, reference)


async def _settle_later(
    ctx: AppContext,
    shipment_id: int,
    worker_id: str,
    decision: Decision,
    *,
    note: str,
    retry_after: float | None = None,
) -> Outcome:
    """Leave the shipment in ``booking`` and let go of it, to be tried again with the same
    reference after a backoff. ``decision.unknown``: the order may exist (``counts``: one more
    reconciliation spent); otherwise the courier was unreachable."""
    now = ctx.clock.now()
    unknown = decision.unknown
    async with transaction(ctx.sessions) as session:
        shipment = await _held_shipment(session, shipment_id, worker_id)
        if shipment is None:
            return Outcome("lost_lease", shipment_id)
        reference = shipment.client_reference
        if decision.counts:
            shipment.reconcile_count += 1
        if decision.may_exist is not None:
            shipment.create_may_exist = decision.may_exist
        _let_go(shipment, now, reason=note)
        attempt = (
            shipment.reconcile_count if unknown or decision.counts else shipment.claim_count - 1
        )
        # never later than the booking deadline: the try at the deadline ends it either way
        shipment.next_poll_at = min(
            now + timedelta(seconds=retry_delay(attempt, retry_after)),
            booking_deadline(ctx, shipment.created_at),
        )
        office_id = await session.scalar(
            select(Delivery.office_id).where(Delivery.id == shipment.delivery_id)
        )
        audit.record(
            session,
            at=now,
            actor=_actor(worker_id),
            action="shipment.outcome_unknown" if unknown else "shipment.retry_later",
            entity="shipment",
            entity_id=shipment.id,
            office_id=office_id,
            after={
                "reconcile_count": shipment.reconcile_count,
                "next_poll_at": shipment.next_poll_at.isoformat(),
            },
            reason=note,
        )
    log.info(
        "booking.later",
        shipment_id=shipment_id,
        reference=reference,
        outcome="unknown" if unknown else "retry",
    )
    return Outcome("unknown" if unknown else "retry", shipment_id, reference)


async def _mark_sending(ctx: AppContext, shipment_id: int, worker_id: str) -> bool:
    """Commit "a create may be in flight" before resending: a crash during the call must leave
    ``create_may_exist`` True. False when the lease is no longer ours."""
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        result = await session.execute(
            update(Shipment)
            .where(
                Shipment.id == shipment_id,
                Shipment.lease_owner == worker_id,
                Shipment.status == Status.BOOKING.value,
            )
            .values(create_may_exist=True, status_reason="create sent again", updated_at=now)
        )
        return bool(getattr(result, "rowcount", 0))


# --------------------------------------------------------------------------------------------
# Phase 1: intent


@dataclass(frozen=True)
class _Intent:
    shipment_id: int
    reference: str
    courier_code: str
    order: ShipmentOrder | None  # None only when a failed job is settled without calling
    may_exist: bool = True  # the last create may have reached the courier
    reconciliations: int = 0  # spent so far (the lease makes this the current count)
    started_at: datetime | None = None  # the intent's time: the booking deadline runs from it


def _address_problem(delivery: Delivery) -> str | None:
    address = delivery.address or {}
    if not address.get("street") or not delivery.destination_regency_code:
        return "the delivery address is incomplete"
    return None


async def _commit_intent(ctx: AppContext, delivery_id: int, worker_id: str) -> _Intent | Outcome:
    now = ctx.clock.now()
    actor = _actor(worker_id)
    async with transaction(ctx.sessions) as session:
        # The row lock (PostgreSQL; BEGIN IMMEDIATE already serialises SQLite) orders this
        # transaction against an address change (courier/services/optin.py locks the same row):
        # either the change commits first and the order carries the new address, or the intent
        # does and the change is refused (a shipment exists). populate_existing: never build
        # the order from a copy read before the lock was granted.
        delivery = await session.scalar(
            select(Delivery)
            .where(
                Delivery.id == delivery_id,
                Delivery.lease_owner == worker_id,
                Delivery.state == DeliveryState.QUEUED.value,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if delivery is None:
            return Outcome("lost_lease")
        application = await session.get(Application, delivery.application_id)
        office = await session.get(Office, delivery.office_id)
        assert application is not None and office is not None
        previous = await session.scalar(
            select(func.max(Shipment.attempt_no)).where(Shipment.delivery_id == delivery.id)
        )
        attempt_no = int(previous or 0) + 1
        # the contract in force now (or the office's configured courier when it has none);
        # imported here: staff imports booking, and routing's use cases take staff's Caller
        from courier.services import routing

        choice = await routing.route(ctx, session, office, delivery, now)
        if isinstance(choice, NoRoute):
            return await _wait_for_contract(session, ctx, delivery, choice, attempt_no, now, actor)
        courier_code = choice.courier_code
        problem = None
        kind = ExceptionKind.ROUTING
        if courier_code not in ctx.couriers:
            problem = f"no courier adapter configured for '{courier_code}'"
        else:
            try:
                reference = client_reference(office.code, application.application_no, attempt_no)
            except ValueError as err:
                problem = f"cannot form a courier reference: {err}"
        if problem is None and (problem := _address_problem(delivery)) is not None:
            kind = ExceptionKind.ADDRESS_INCOMPLETE
        if problem is not None:
            delivery.lease_owner = None
            delivery.lease_until = None
            await _to_person(
                session,
                delivery,
                shipment_id=None,
                kind=kind,
                reason=problem,
                dedupe_key=f"routing:{delivery.id}:{attempt_no}",
                now=now,
                actor=actor,
            )
            log.warning("booking.unroutable", delivery_id=delivery_id, courier=courier_code)
            return Outcome("needs_attention")
        # the order is built from the locked row, before anything else in this transaction
        order = build_order(
            reference=reference,
            office=office,
            application=application,
            delivery=delivery,
            courier_code=courier_code,
            courier_settings=ctx.settings.couriers.get(courier_code, {}),
        )
        shipment = Shipment(
            delivery_id=delivery.id,
            attempt_no=attempt_no,
            courier_code=courier_code,
            contract_id=choice.contract_id,
            sla_days=choice.sla_days,
            cost=choice.expected_cost,
            client_reference=reference,
            status=Status.BOOKING.value,
            lease_owner=worker_id,
            lease_until=now + timedelta(seconds=ctx.settings.lease_seconds),
            claim_count=1,
            reconcile_count=0,
            created_at=now,
            updated_at=now,
        )
        session.add(shipment)
        await session.flush()
        delivery.lease_owner = None  # the shipment carries the lease from here on
        delivery.lease_until = None
        delivery.next_attempt_at = None
        _move_delivery(session, delivery, DeliveryState.SHIPPING, now=now, actor=actor)
        audit.record(
            session,
            at=now,
            actor=actor,
            action="shipment.booking",
            entity="shipment",
            entity_id=shipment.id,
            office_id=office.id,
            after={
                "status": Status.BOOKING.value,
                "client_reference": reference,
                "attempt_no": attempt_no,
                "courier": courier_code,
                "contract_id": choice.contract_id,
            },
        )
        if choice.contract_id is not None:
            await items.resolve_exceptions(
                session,
                delivery_id=delivery.id,
                kinds=(ExceptionKind.NO_CONTRACT.value,),
                by=actor,
                resolution=f"booked under contract {choice.contract_id}",
                now=now,
            )
        shipment_id = shipment.id
    log.info(
        "booking.intent",
        delivery_id=delivery_id,
        shipment_id=shipment_id,
        reference=reference,
        courier=courier_code,
        attempt=attempt_no,
    )
    return _Intent(shipment_id, reference, courier_code, order, started_at=now)


async def _wait_for_contract(
    session: AsyncSession,
    ctx: AppContext,
    delivery: Delivery,
    no_route: NoRoute,
    attempt_no: int,
    now: datetime,
    actor: str,
) -> Outcome:
    """No contract may carry this passport today: nothing is booked. The delivery stays
    ``queued`` and is looked at again after a backoff (30 s doubling to an hour; activating a
    contract wakes it at once), with one ``no_contract`` item in the exceptions queue saying
    why; the booking that follows once a contract covers it closes the item
    (docs/decisions.md §28)."""
    delivery.lease_owner = None
    delivery.lease_until = None
    delivery.next_attempt_at = now + timedelta(
        seconds=retry_delay(max(0, delivery.claim_count - 1))
    )
    delivery.state_reason = no_route.reason
    delivery.updated_at = now
    opened = await items.open_exception(
        session,
        now=now,
        office_id=delivery.office_id,
        delivery_id=delivery.id,
        kind=ExceptionKind.NO_CONTRACT,
        detail=no_route.reason,
        dedupe_key=f"no_contract:{delivery.id}:{attempt_no}",
    )
    if opened is not None:
        audit.record(
            session,
            at=now,
            actor=actor,
            action="delivery.waiting_for_contract",
            entity="delivery",
            entity_id=delivery.id,
            office_id=delivery.office_id,
            after={"regency": no_route.regency_code},
            reason=no_route.reason,
        )
    log.info(
        "booking.no_contract",
        delivery_id=delivery.id,
        regency=no_route.regency_code,
        next_attempt_at=delivery.next_attempt_at.isoformat(),
    )
    return Outcome("retry")


async def _load_for_reconcile(ctx: AppContext, shipment_id: int, worker_id: str) -> _Intent | None:
    async with ctx.sessions() as session:
        shipment = await _held_shipment(session, shipment_id, worker_id)
        if shipment is None:
            return None
        delivery = await session.get(Delivery, shipment.delivery_id)
        assert delivery is not None
        application = await session.get(Application, delivery.application_id)
        office = await session.get(Office, delivery.office_id)
        assert application is not None and office is not None
        order = build_order(
            reference=shipment.client_reference,
            office=office,
            application=application,
            delivery=delivery,
            courier_code=shipment.courier_code,
            courier_settings=ctx.settings.couriers.get(shipment.courier_code, {}),
        )
        return _Intent(
            shipment.id,
            shipment.client_reference,
            shipment.courier_code,
            order,
            may_exist=shipment.create_may_exist,
            reconciliations=shipment.reconcile_count,
            started_at=shipment.created_at,
        )


# --------------------------------------------------------------------------------------------
# Public entry points: each step's event goes through the decision table until it ends


async def book_delivery(ctx: AppContext, delivery_id: int, worker_id: str) -> Outcome:
    """Book a queued delivery this worker has claimed (``lease_owner == worker_id``)."""
    intent = await _commit_intent(ctx, delivery_id, worker_id)
    if isinstance(intent, Outcome):
        return intent
    _crash_point("before_book")
    adapter = ctx.couriers[intent.courier_code]
    assert intent.order is not None
    answer = await _create(adapter, intent.order)
    return await _carry_out(ctx, intent, worker_id, adapter, Step.CREATE, answer)


async def reconcile_shipment(ctx: AppContext, shipment_id: int, worker_id: str) -> Outcome:
    """Settle a shipment left in ``booking`` (claimed by this worker) by its own reference, as
    far as its courier allows (courier/domain/booking_decision.py)."""
    intent = await _load_for_reconcile(ctx, shipment_id, worker_id)
    if intent is None:
        return Outcome("lost_lease", shipment_id)
    adapter = ctx.couriers.get(intent.courier_code)
    if adapter is None:
        note = f"no courier adapter configured for '{intent.courier_code}'"
        decision = decide(_situation(ctx, intent, None, Step.RECLAIM, Event.NO_ADAPTER))
        return await _settle_later(ctx, shipment_id, worker_id, decision, note=note)
    log.info("booking.reconcile", shipment_id=shipment_id, reference=intent.reference)
    return await _carry_out(ctx, intent, worker_id, adapter, Step.RECLAIM, _Answer(Event.STARTED))


@dataclass(frozen=True)
class _Answer:
    """What one courier call ended in, as the decision table's event."""

    event: Event
    booking: Booking | None = None
    error: CourierError | None = None
    fault: str = ""  # an unforeseen exception: its type and where it was raised (no message)


def _event_of(err: CourierError) -> Event:
    if isinstance(err, NotUnderstood):
        return Event.NOT_UNDERSTOOD
    if isinstance(err, DuplicateReference):
        return Event.DUPLICATE
    if isinstance(err, OutcomeUnknown):
        return Event.UNKNOWN
    if isinstance(err, CourierRejected):
        return Event.REJECTED
    if isinstance(err, RateLimited):
        return Event.RATE_LIMITED
    if isinstance(err, CourierUnavailable):
        return Event.UNAVAILABLE
    if isinstance(err, AuthFailed):
        return Event.AUTH_FAILED
    if isinstance(err, RequestNotBuilt):
        return Event.UNSENDABLE
    return Event.FAILED


def fault_summary(err: BaseException) -> str:
    """An unforeseen exception as staff and logs may see it: its type and the innermost place
    it was raised. Never its message: it may quote the data (a name, a street)."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    return f"{type(err).__name__}{where}"


def _fault(err: Exception, step: str) -> _Answer:
    summary = fault_summary(err)
    log.error("booking.fault", step=step, fault=summary)
    return _Answer(Event.FAULT, fault=summary)


async def _create(adapter: CourierAdapter, order: ShipmentOrder) -> _Answer:
    try:
        booking = await adapter.book(order)
    except CourierError as err:
        return _Answer(_event_of(err), error=err)
    except Exception as err:  # building, signing or parsing failed in a way nobody foresaw
        return _fault(err, "create")
    _crash_point("after_book")
    return _Answer(Event.BOOKED, booking)


async def _look_up(adapter: CourierAdapter, reference: str) -> _Answer:
    try:
        found = await adapter.find(reference)
    except NotSupported as err:  # not configured, or the route is missing: a capability fact
        return _Answer(Event.NO_LOOKUP, error=err)
    except CourierError as err:
        return _Answer(_event_of(err), error=err)
    except Exception as err:
        return _fault(err, "find")
    return _Answer(Event.NOT_FOUND) if found is None else _Answer(Event.FOUND, found)


def booking_deadline(ctx: AppContext, started_at: datetime) -> datetime:
    """When a booking begun at ``started_at`` must have an outcome or a person asked."""
    return started_at + timedelta(seconds=ctx.settings.booking_deadline_seconds)


def _situation(
    ctx: AppContext, intent: _Intent, adapter: CourierAdapter | None, step: Step, event: Event
) -> Situation:
    can = adapter.capabilities if adapter is not None else None
    return Situation(
        step=step,
        event=event,
        courier=Courier(
            can_find=bool(can and can.find), dedupes=bool(can and can.dedupes_reference)
        ),
        may_exist=intent.may_exist,
        reconciliations=intent.reconciliations,
        max_reconciliations=ctx.settings.max_reconciliations,
        first_create=step is Step.CREATE,
        overdue=intent.started_at is not None
        and ctx.clock.now() >= booking_deadline(ctx, intent.started_at),
    )


_HOW = {
    Step.CREATE: "booked",
    Step.RESEND: "reconciled: resent",
    Step.LOOKUP: "reconciled: found",
    Step.CONFIRM: "reconciled: duplicate, then found",
}


def _note(answer: _Answer, reference: str) -> str:
    err = answer.error
    if answer.fault:
        return f"unexpected error: {answer.fault}"
    if isinstance(err, RequestNotBuilt):
        return err.message
    if err is None:
        return f"{reference} not found at the courier yet"
    if isinstance(err, OutcomeUnknown):
        return f"outcome unknown: {err.message}"
    if isinstance(err, RateLimited):
        return "courier rate limit"
    if isinstance(err, CourierUnavailable):
        return f"courier unavailable: {err.message}"
    return f"{type(err).__name__}: {err.message}"


async def _carry_out(
    ctx: AppContext,
    intent: _Intent,
    worker_id: str,
    adapter: CourierAdapter,
    step: Step,
    answer: _Answer,
) -> Outcome:
    """Carry out the table's decisions for this job, one courier call at a time, until one
    ends it (booked, rejected, later, or a person)."""
    sid = intent.shipment_id
    while True:
        decision = decide(_situation(ctx, intent, adapter, step, answer.event))
        action = decision.action
        if action is Action.BOOK:
            assert answer.booking is not None
            return await _settle_booked(ctx, sid, worker_id, answer.booking, _HOW[step])
        if action is Action.REJECT:
            assert isinstance(answer.error, CourierRejected)
            return await _settle_rejected(ctx, sid, worker_id, answer.error)
        note = _note(answer, intent.reference)
        if action is Action.ASK_PERSON:
            raw = None
            if isinstance(answer.error, NotUnderstood):
                raw = answer.error.raw
                answer_text = json.dumps(raw, ensure_ascii=False, sort_keys=True)[:1000]
                note = f"{answer.error.message}; the answer (redacted): {answer_text}"
            elif decision.why in (Why.OVERDUE, Why.FAULT):
                pass  # the note says what the last try ended in
            elif answer.event is Event.STARTED:
                note = "the last create may have reached the courier"
            elif answer.error is not None:
                note = f"create outcome unknown: {answer.error.message}"
            return await _settle_person(ctx, intent, worker_id, decision, note, raw)
        if action is Action.WAIT:
            err = answer.error
            if isinstance(err, AuthFailed) and decision.alert_auth:
                await _auth_exception(ctx, intent, worker_id, err)
            if answer.event in (Event.AUTH_FAILED, Event.FAILED):
                log.error(
                    "booking.courier_error",
                    shipment_id=sid,
                    reference=intent.reference,
                    courier=adapter.code,
                    exc_type=type(err).__name__,
                )
            retry_after = err.retry_after if isinstance(err, RateLimited) else None
            return await _settle_later(
                ctx, sid, worker_id, decision, note=note, retry_after=retry_after
            )
        if action is Action.LOOK_UP:
            step = Step.CONFIRM if step is Step.RESEND else Step.LOOKUP
            answer = await _look_up(adapter, intent.reference)
            continue
        # RESEND: the same reference, after committing that a create may be in flight
        if not await _mark_sending(ctx, sid, worker_id):
            return Outcome("lost_lease", sid, intent.reference)
        intent = replace(intent, may_exist=True)
        step = Step.RESEND
        assert intent.order is not None
        answer = await _create(adapter, intent.order)


async def _auth_exception(
    ctx: AppContext, intent: _Intent, worker_id: str, err: AuthFailed
) -> None:
    """Credentials refused: no delivery is at fault, but staff must see it (one item per
    courier and office)."""
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        office_id = await session.scalar(
            select(Delivery.office_id)
            .join(Shipment, Shipment.delivery_id == Delivery.id)
            .where(Shipment.id == intent.shipment_id)
        )
        if office_id is None:
            return
        await items.open_exception(
            session,
            now=now,
            office_id=office_id,
            delivery_id=None,
            shipment_id=None,
            kind=ExceptionKind.COURIER_AUTH,
            detail=f"{err.courier}: credentials refused ({err.message})",
            dedupe_key=f"courier_auth:{err.courier}:{office_id}",
        )


# --------------------------------------------------------------------------------------------
# A job that failed outside the courier call (the worker's last resort): never a hot loop


async def shipment_job_failed(
    ctx: AppContext, shipment_id: int, worker_id: str, err: Exception
) -> Outcome:
    """A reconciliation job raised where no courier answer explains it (loading, building the
    order, recording the result): one try spent, backed off; at ``max_reconciliations`` (or
    past the booking deadline) a ``booking_fault`` item asks a person."""
    summary = fault_summary(err)
    async with ctx.sessions() as session:
        shipment = await _held_shipment(session, shipment_id, worker_id)
        if shipment is None:
            return Outcome("lost_lease", shipment_id)
        intent = _Intent(
            shipment.id,
            shipment.client_reference,
            shipment.courier_code,
            order=None,
            may_exist=shipment.create_may_exist,
            reconciliations=shipment.reconcile_count,
            started_at=shipment.created_at,
        )
    decision = decide(
        _situation(ctx, intent, ctx.couriers.get(intent.courier_code), Step.RECLAIM, Event.FAULT)
    )
    note = f"unexpected error: {summary}"
    if decision.action is Action.ASK_PERSON:
        return await _settle_person(ctx, intent, worker_id, decision, note)
    return await _settle_later(ctx, shipment_id, worker_id, decision, note=note)


async def delivery_job_failed(
    ctx: AppContext, delivery_id: int, worker_id: str, err: Exception
) -> Outcome:
    """Booking a queued delivery raised before its intent was committed: the delivery stays
    queued and is tried again after a backoff; once it has failed ``max_reconciliations``
    times it goes to needs_attention with a ``booking_fault`` item (nothing was sent)."""
    now = ctx.clock.now()
    summary = fault_summary(err)
    async with transaction(ctx.sessions) as session:
        delivery = await session.scalar(
            select(Delivery).where(
                Delivery.id == delivery_id,
                Delivery.lease_owner == worker_id,
                Delivery.state == DeliveryState.QUEUED.value,
            )
        )
        if delivery is None:
            return Outcome("lost_lease")
        delivery.lease_owner = None
        delivery.lease_until = None
        tries = delivery.claim_count
        if tries < ctx.settings.max_reconciliations:
            delivery.next_attempt_at = now + timedelta(seconds=retry_delay(max(0, tries - 1)))
            return Outcome("retry")
        delivery.next_attempt_at = None
        await _to_person(
            session,
            delivery,
            shipment_id=None,
            kind=ExceptionKind.BOOKING_FAULT,
            reason=(
                f"the booking failed {tries} times with an error in our code before anything "
                f"was sent to the courier ({summary})"
            ),
            dedupe_key=f"booking_fault:d{delivery.id}:{tries}",
            now=now,
            actor=_actor(worker_id),
        )
    return Outcome("needs_attention")
