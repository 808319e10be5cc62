"""Booking: exactly one courier order per shipment attempt (invariant 1).

Three phases, each its own transaction around at most one courier call::

    1. intent   shipment row: status booking, deterministic client reference, lease   COMMIT
                delivery: queued -> shipping
    2. call     adapter.book(order with that reference)
    3. result   booked + waybill | booking_failed | left in booking for reconciliation COMMIT

A crash between 1 and 3 leaves a shipment in ``booking`` whose lease runs out. Whoever claims it
next *reconciles* by the same reference (:func:`reconcile_shipment`): ``find`` it at the
courier, or send the very same order again and read "duplicate reference" (``OutcomeUnknown``)
as "it exists" and look again. A new reference is never minted for the same attempt; the
partial unique indexes (one open shipment per delivery, one reference per courier) back that up.
An outcome still unknown after ``worker.max_reconciliations`` tries goes to a human
(needs_attention + an exception item), never to a second order.

Every write after the intent is a compare-and-set on ``lease_owner``: a worker whose lease was
taken over cannot overwrite the new owner's result.

Crash points for the chaos tests: with ``COURIER_TEST_CRASH_AT=before_book`` (intent committed,
courier not called) or ``after_book`` (courier answered, result not committed) the process
``os._exit(137)``s right there, exactly like a SIGKILL at that instant. Unset, it does nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import (
    Address,
    AuthFailed,
    Booking,
    CourierAdapter,
    CourierError,
    CourierRejected,
    CourierUnavailable,
    NotSupported,
    OutcomeUnknown,
    Party,
    RateLimited,
    ShipmentOrder,
    Status,
)
from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import Application, Delivery, ExceptionItem, Office, Shipment
from courier.domain.references import client_reference
from courier.domain.states import DELIVERY_MOVES, DeliveryState, check_delivery_move
from courier.services import audit

log = structlog.get_logger()

CRASH_ENV = "COURIER_TEST_CRASH_AT"
#: Service code when a courier's settings name none: J&T "EZ" (regular). Pos takes its own
#: configured default productid when the order names none, so none is given here.
DEFAULT_SERVICE = {"jnt": "EZ"}
DEFAULT_WEIGHT_KG = Decimal("0.2")  # a passport in a padded envelope
DEFAULT_DECLARED_VALUE = 650_000  # rupiah: the fee of a 10-year e-passport, what it costs to redo

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
    delay = min(MAX_RETRY_DELAY, 30.0 * (2 ** max(0, attempt)))
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
    sender = dict(office.sender or {})
    return ShipmentOrder(
        reference=reference,
        sender=Party(
            name=str(sender.get("contact") or office.name),
            phone=str(sender.get("phone", "")),
            address=_address(sender),
        ),
        receiver=Party(
            name=application.applicant_name,
            phone=application.phone,
            address=_address(delivery.address or {}, delivery.destination_regency_code),
            email=str((delivery.address or {}).get("email", "")),
        ),
        weight_kg=Decimal(str(courier_settings.get("weight_kg", DEFAULT_WEIGHT_KG))),
        declared_value=int(courier_settings.get("declared_value", DEFAULT_DECLARED_VALUE)),
        service=str(courier_settings.get("service") or DEFAULT_SERVICE.get(courier_code, "")),
        description="DOKUMEN",
    )


# --------------------------------------------------------------------------------------------
# Shared writes


async def _open_exception(
    session: AsyncSession,
    *,
    now: datetime,
    office_id: int,
    delivery_id: int | None,
    shipment_id: int | None,
    kind: str,
    detail: str,
    next_step: str,
    dedupe_key: str,
) -> None:
    existing = await session.scalar(
        select(ExceptionItem.id).where(ExceptionItem.dedupe_key == dedupe_key)
    )
    if existing is not None:
        return
    session.add(
        ExceptionItem(
            office_id=office_id,
            delivery_id=delivery_id,
            shipment_id=shipment_id,
            kind=kind,
            detail=detail,
            next_step=next_step,
            dedupe_key=dedupe_key[:80],
            opened_at=now,
        )
    )


def _move_delivery(
    session: AsyncSession,
    delivery: Delivery,
    target: DeliveryState,
    *,
    now: datetime,
    actor: str,
    reason: str | None = None,
) -> None:
    current = DeliveryState(delivery.state)
    if current is target:
        return
    if target is not DeliveryState.SHIPPING and target not in DELIVERY_MOVES[current]:
        # staff moved it meanwhile (cancelled, collected): the shipment record still changes,
        # the delivery keeps what a human decided
        log.warning("booking.delivery_move_skipped", delivery_id=delivery.id,
                    from_state=current.value, to_state=target.value)
        return
    check_delivery_move(current, target)
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


async def _held_shipment(session: AsyncSession, shipment_id: int, worker_id: str) -> (
    Shipment | None
):
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
        shipment.status = Status.BOOKED.value
        shipment.waybill = booking.waybill
        shipment.status_reason = None
        shipment.booked_at = now
        shipment.lease_owner = None
        shipment.lease_until = None
        shipment.next_poll_at = now  # tracking takes it from here
        shipment.updated_at = now
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
        reference = shipment.client_reference
    log.info("booking.booked", shipment_id=shipment_id, reference=reference,
             waybill=booking.waybill, how=how)
    return Outcome("booked", shipment_id, reference)


async def _settle_rejected(
    ctx: AppContext, shipment_id: int, worker_id: str, err: CourierRejected
) -> Outcome:
    now = ctx.clock.now()
    reason = f"{err.courier} refused the order ({err.code}): {err.reason}"
    async with transaction(ctx.sessions) as session:
        shipment = await _held_shipment(session, shipment_id, worker_id)
        if shipment is None:
            return Outcome("lost_lease", shipment_id)
        delivery = await session.get(Delivery, shipment.delivery_id)
        assert delivery is not None
        shipment.status = Status.BOOKING_FAILED.value
        shipment.status_reason = reason
        shipment.lease_owner = None
        shipment.lease_until = None
        shipment.next_poll_at = None
        shipment.updated_at = now
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
        _move_delivery(session, delivery, DeliveryState.NEEDS_ATTENTION, now=now,
                       actor=_actor(worker_id), reason=reason)
        await _open_exception(
            session,
            now=now,
            office_id=delivery.office_id,
            delivery_id=delivery.id,
            shipment_id=shipment.id,
            kind="booking_rejected",
            detail=reason,
            next_step="Periksa alamat/data pengiriman, perbaiki, lalu kirim ulang "
            "(atau minta pemohon mengambil di kantor).",
            dedupe_key=f"booking_rejected:{shipment.id}",
        )
        reference = shipment.client_reference
    log.warning("booking.rejected", shipment_id=shipment_id, reference=reference,
                error_code=err.code)
    return Outcome("rejected", shipment_id, reference)


async def _settle_later(
    ctx: AppContext,
    shipment_id: int,
    worker_id: str,
    *,
    unknown: bool,
    note: str,
    retry_after: float | None = None,
) -> Outcome:
    """Leave the shipment in ``booking`` and let go of it. ``unknown``: the order may exist
    (counts towards ``max_reconciliations``); otherwise the courier was unreachable and the
    attempt is simply retried later with the same reference."""
    now = ctx.clock.now()
    limit = ctx.settings.max_reconciliations
    async with transaction(ctx.sessions) as session:
        shipment = await _held_shipment(session, shipment_id, worker_id)
        if shipment is None:
            return Outcome("lost_lease", shipment_id)
        reference = shipment.client_reference
        shipment.lease_owner = None
        shipment.lease_until = None
        shipment.status_reason = note
        shipment.updated_at = now
        first_call = shipment.claim_count <= 1 and shipment.reconcile_count == 0
        if unknown and not first_call:
            shipment.reconcile_count += 1
        if unknown and shipment.reconcile_count >= limit:
            shipment.next_poll_at = None  # a human decides now; never claimed again
            delivery = await session.get(Delivery, shipment.delivery_id)
            assert delivery is not None
            reason = (
                f"outcome of booking {reference} still unknown after "
                f"{shipment.reconcile_count} reconciliations"
            )
            _move_delivery(session, delivery, DeliveryState.NEEDS_ATTENTION, now=now,
                           actor=_actor(worker_id), reason=reason)
            await _open_exception(
                session,
                now=now,
                office_id=delivery.office_id,
                delivery_id=delivery.id,
                shipment_id=shipment.id,
                kind="booking_unknown",
                detail=reason,
                next_step=f"Cek di portal kurir apakah pesanan {reference} ada; catat resinya "
                "atau batalkan pengiriman ini. Jangan membuat pesanan baru sebelum jelas.",
                dedupe_key=f"booking_unknown:{shipment.id}",
            )
            audit.record(
                session, at=now, actor=_actor(worker_id), action="shipment.outcome_unknown",
                entity="shipment", entity_id=shipment.id, office_id=delivery.office_id,
                after={"reconcile_count": shipment.reconcile_count}, reason=reason,
            )
            log.warning("booking.gave_up", shipment_id=shipment_id, reference=reference,
                        count=shipment.reconcile_count)
            return Outcome("needs_attention", shipment_id, reference)
        attempt = shipment.reconcile_count if unknown else shipment.claim_count - 1
        shipment.next_poll_at = now + timedelta(seconds=retry_delay(attempt, retry_after))
        audit.record(
            session, at=now, actor=_actor(worker_id),
            action="shipment.outcome_unknown" if unknown else "shipment.retry_later",
            entity="shipment", entity_id=shipment.id, office_id=None,
            after={"reconcile_count": shipment.reconcile_count,
                   "next_poll_at": shipment.next_poll_at.isoformat()},
            reason=note,
        )
    log.info("booking.later", shipment_id=shipment_id, reference=reference,
             outcome="unknown" if unknown else "retry")
    return Outcome("unknown" if unknown else "retry", shipment_id, reference)


# --------------------------------------------------------------------------------------------
# Phase 1: intent


@dataclass(frozen=True)
class _Intent:
    shipment_id: int
    reference: str
    courier_code: str
    order: ShipmentOrder


async def _commit_intent(
    ctx: AppContext, delivery_id: int, worker_id: str
) -> _Intent | Outcome:
    now = ctx.clock.now()
    actor = _actor(worker_id)
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
        application = await session.get(Application, delivery.application_id)
        office = await session.get(Office, delivery.office_id)
        assert application is not None and office is not None
        # Routing until contracts exist: the office's configured courier.
        courier_code = office.courier_code
        previous = await session.scalar(
            select(func.max(Shipment.attempt_no)).where(Shipment.delivery_id == delivery.id)
        )
        attempt_no = int(previous or 0) + 1
        problem = None
        if courier_code not in ctx.couriers:
            problem = f"no courier adapter configured for '{courier_code}'"
        else:
            try:
                reference = client_reference(office.code, application.application_no, attempt_no)
            except ValueError as err:
                problem = f"cannot form a courier reference: {err}"
        if problem is not None:
            delivery.lease_owner = None
            delivery.lease_until = None
            _move_delivery(session, delivery, DeliveryState.NEEDS_ATTENTION, now=now,
                           actor=actor, reason=problem)
            await _open_exception(
                session, now=now, office_id=office.id, delivery_id=delivery.id,
                shipment_id=None, kind="routing", detail=problem,
                next_step="Atur kurir kantor ini (atau kontraknya), lalu antrekan ulang.",
                dedupe_key=f"routing:{delivery.id}:{attempt_no}",
            )
            log.warning("booking.unroutable", delivery_id=delivery_id, courier=courier_code)
            return Outcome("needs_attention")
        shipment = Shipment(
            delivery_id=delivery.id,
            attempt_no=attempt_no,
            courier_code=courier_code,
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
            session, at=now, actor=actor, action="shipment.booking", entity="shipment",
            entity_id=shipment.id, office_id=office.id,
            after={"status": Status.BOOKING.value, "client_reference": reference,
                   "attempt_no": attempt_no, "courier": courier_code},
        )
        order = build_order(
            reference=reference, office=office, application=application, delivery=delivery,
            courier_code=courier_code,
            courier_settings=ctx.settings.couriers.get(courier_code, {}),
        )
        shipment_id = shipment.id
    log.info("booking.intent", delivery_id=delivery_id, shipment_id=shipment_id,
             reference=reference, courier=courier_code, attempt=attempt_no)
    return _Intent(shipment_id, reference, courier_code, order)


async def _load_for_reconcile(
    ctx: AppContext, shipment_id: int, worker_id: str
) -> _Intent | None:
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
            reference=shipment.client_reference, office=office, application=application,
            delivery=delivery, courier_code=shipment.courier_code,
            courier_settings=ctx.settings.couriers.get(shipment.courier_code, {}),
        )
        return _Intent(shipment.id, shipment.client_reference, shipment.courier_code, order)


# --------------------------------------------------------------------------------------------
# Public entry points


async def book_delivery(ctx: AppContext, delivery_id: int, worker_id: str) -> Outcome:
    """Book a queued delivery this worker has claimed (``lease_owner == worker_id``)."""
    intent = await _commit_intent(ctx, delivery_id, worker_id)
    if isinstance(intent, Outcome):
        return intent
    _crash_point("before_book")
    adapter = ctx.couriers[intent.courier_code]
    try:
        booking = await adapter.book(intent.order)
    except CourierError as err:
        return await _after_error(ctx, intent, worker_id, err, adapter)
    _crash_point("after_book")
    return await _settle_booked(ctx, intent.shipment_id, worker_id, booking, "booked")


async def reconcile_shipment(ctx: AppContext, shipment_id: int, worker_id: str) -> Outcome:
    """Settle a shipment left in ``booking`` (claimed by this worker) by its own reference."""
    intent = await _load_for_reconcile(ctx, shipment_id, worker_id)
    if intent is None:
        return Outcome("lost_lease", shipment_id)
    adapter = ctx.couriers.get(intent.courier_code)
    if adapter is None:
        return await _settle_later(ctx, shipment_id, worker_id, unknown=False,
                                   note=f"no courier adapter configured for "
                                   f"'{intent.courier_code}'")
    log.info("booking.reconcile", shipment_id=shipment_id, reference=intent.reference)
    try:
        found = await _find(adapter, intent.reference)
        if found is not None:
            return await _settle_booked(ctx, shipment_id, worker_id, found, "reconciled: found")
        booking = await adapter.book(intent.order)  # same reference: at most one order exists
    except OutcomeUnknown as err:
        # the duplicate answer ("Orderid tidak boleh sama"): it exists; look once more
        try:
            found = await _find(adapter, intent.reference)
        except CourierError as again:
            return await _after_error(ctx, intent, worker_id, again, adapter)
        if found is not None:
            return await _settle_booked(ctx, shipment_id, worker_id, found,
                                        "reconciled: duplicate, then found")
        return await _after_error(ctx, intent, worker_id, err, adapter)
    except CourierError as err:
        return await _after_error(ctx, intent, worker_id, err, adapter)
    _crash_point("after_book")
    return await _settle_booked(ctx, shipment_id, worker_id, booking, "reconciled: resent")


async def _find(adapter: CourierAdapter, reference: str) -> Booking | None:
    if not adapter.capabilities.find:
        return None
    try:
        return await adapter.find(reference)
    except NotSupported:
        return None


async def _after_error(
    ctx: AppContext, intent: _Intent, worker_id: str, err: CourierError, adapter: CourierAdapter
) -> Outcome:
    sid = intent.shipment_id
    if isinstance(err, OutcomeUnknown):
        return await _settle_later(ctx, sid, worker_id, unknown=True,
                                   note=f"outcome unknown: {err.message}")
    if isinstance(err, CourierRejected):
        return await _settle_rejected(ctx, sid, worker_id, err)
    if isinstance(err, RateLimited):
        return await _settle_later(ctx, sid, worker_id, unknown=False,
                                   note="courier rate limit", retry_after=err.retry_after)
    if isinstance(err, CourierUnavailable):
        return await _settle_later(ctx, sid, worker_id, unknown=False,
                                   note=f"courier unavailable: {err.message}")
    if isinstance(err, AuthFailed):
        await _auth_exception(ctx, intent, worker_id, err)
    log.error("booking.courier_error", shipment_id=sid, reference=intent.reference,
              courier=adapter.code, exc_type=type(err).__name__)
    return await _settle_later(ctx, sid, worker_id, unknown=False,
                               note=f"{type(err).__name__}: {err.message}")


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
        await _open_exception(
            session, now=now, office_id=office_id, delivery_id=None, shipment_id=None,
            kind="courier_auth", detail=f"{err.courier}: credentials refused ({err.message})",
            next_step="Periksa kredensial API kurir di konfigurasi.",
            dedupe_key=f"courier_auth:{err.courier}:{office_id}",
        )
