"""Handover: from the courier's proof of delivery to a verified handover (DESIGN §2.7).

* :func:`on_delivered` (inside the tracking transaction) applies the office's policy to the
  proof: the applicant in person → a handover awaiting the applicant's confirmation; a family
  member on the KK or a holder of a surat kuasa → needs review by a dispatcher; anyone else → an
  exception item and the delivery in needs-attention.
* :func:`confirm_possession`: the applicant types the passport number printed in the passport on
  the tracking page; it is checked against the stored argon2 hash (the intake's own function,
  outside any transaction), with :data:`MAX_CONFIRM_FAILURES` wrong tries before the handover
  locks → handover verified, delivery handed over, custody → applicant.
* :func:`review`: a dispatcher approves (verified, handed over) or refuses (needs attention) a
  handover that the policy sent to review.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from courier.db.engine import SessionFactory, transaction
from courier.db.models import Application, Delivery, Handover, Proof, Shipment
from courier.domain.exception_kinds import ExceptionKind
from courier.domain.handover import HandoverStep, Relation, handover_outcome, receiver_matches
from courier.domain.states import DeliveryState
from courier.services import audit, items, lifecycle, notices
from courier.services.errors import Kind, ServiceError
from courier.services.intake import passport_matches
from courier.services.optin import delivery_by_token_hash

log = structlog.get_logger()

MAX_CONFIRM_FAILURES = 5

AWAITING = "awaiting_confirmation"
NEEDS_REVIEW = "needs_review"
VERIFIED = "verified"
REFUSED = "refused"
REVIEW_KINDS = ("handover_review", "handover_exception", "unconfirmed")


def holder_for(proof: Proof, applicant_name: str) -> str:
    """Who holds the passport after the courier's delivery, for the custody chain."""
    relation = Relation(proof.relation_kind)
    if relation in (Relation.SELF, Relation.UNKNOWN) and receiver_matches(
        proof.receiver_name, applicant_name
    ):
        return "applicant"
    return "family" if relation is Relation.FAMILY else "other"


async def on_delivered(
    session: AsyncSession,
    delivery: Delivery,
    shipment: Shipment,
    proof: Proof,
    *,
    applicant_name: str,
    now: datetime,
) -> Handover:
    """Open the handover for a delivered shipment according to the policy."""
    outcome = handover_outcome(
        Relation(proof.relation_kind), receiver_matches(proof.receiver_name, applicant_name)
    )
    awaiting = outcome.step is HandoverStep.AWAITING_APPLICANT_CONFIRMATION
    record = Handover(
        delivery_id=delivery.id,
        shipment_id=shipment.id,
        method="applicant_confirmation" if awaiting else "review",
        state=AWAITING if awaiting else NEEDS_REVIEW,
        verified=False,
        confirm_failures=0,
        created_at=now,
    )
    session.add(record)
    await session.flush()
    actor = f"courier:{shipment.courier_code}"
    audit.record(
        session,
        at=now,
        actor=actor,
        action="handover.opened",
        entity="handover",
        entity_id=record.id,
        office_id=delivery.office_id,
        after={"state": record.state, "relation_kind": proof.relation_kind},
        reason=outcome.reason,
    )
    if awaiting:
        await items.queue_outbox(
            session,
            kind="applicant_confirm_request",
            delivery_id=delivery.id,
            payload={"delivery_id": delivery.id, "handover_id": record.id},
            dedupe_key=f"confirm_request:{record.id}",
            now=now,
        )
        return record
    exception = outcome.step is HandoverStep.EXCEPTION
    await items.open_exception(
        session,
        office_id=delivery.office_id,
        delivery_id=delivery.id,
        shipment_id=shipment.id,
        kind=ExceptionKind.HANDOVER_EXCEPTION if exception else ExceptionKind.HANDOVER_REVIEW,
        detail=outcome.reason,
        dedupe_key=f"handover:{record.id}",
        now=now,
    )
    # a review waits for a dispatcher as much as an exception does: either way the delivery
    # rests visibly in needs-attention (invariant 3) until a person approves or refuses it
    lifecycle.move_delivery(
        session,
        delivery,
        DeliveryState.NEEDS_ATTENTION,
        actor=actor,
        now=now,
        reason=outcome.reason,
    )
    return record


# --------------------------------------------------------------------------------------------
# The applicant confirms possession


class Confirmed(enum.StrEnum):
    VERIFIED = "verified"
    ALREADY = "already_verified"
    WRONG = "wrong"  # counted: commit, then refuse with confirmation_error()
    LOCKED = "locked"  # too many wrong numbers: a dispatcher must review


@dataclass(frozen=True)
class Confirmation:
    outcome: Confirmed
    handover_id: int


async def _open_handover(
    session: AsyncSession, delivery_id: int, *, for_update: bool
) -> Handover | None:
    """The delivery's latest handover."""
    query = (
        select(Handover)
        .where(Handover.delivery_id == delivery_id)
        .order_by(Handover.id.desc())
        .limit(1)
    )
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


def confirmation_error(outcome: Confirmed) -> ServiceError | None:
    """The refusal to show for a WRONG or LOCKED confirmation; None for a success."""
    if outcome is Confirmed.WRONG:
        # deliberately generic: the page learns nothing about the stored number
        return ServiceError(
            Kind.IDENTITY,
            "confirmation_failed",
            "Nomor paspor tidak cocok. / The passport number does not match.",
        )
    if outcome is Confirmed.LOCKED:
        return ServiceError(
            Kind.RATE_LIMITED,
            "too_many_attempts",
            "Terlalu banyak percobaan; petugas akan menghubungi Anda. / Too many attempts; "
            "the office will contact you.",
        )
    return None


@dataclass(frozen=True)
class _Pending:
    """What the confirmation read before the (slow) passport check."""

    delivery_id: int
    handover_id: int
    stored_hash: str | None


NOTHING_TO_CONFIRM = (
    "Belum ada serah terima yang menunggu konfirmasi Anda. / There is no delivery waiting for "
    "your confirmation."
)


def _gate(record: Handover | None, max_failures: int) -> tuple[Handover, Confirmation | None]:
    """The handover, and the answer that needs no passport check (already verified, locked) or
    None to go on; raises conflict when no handover awaits the applicant."""
    if record is not None and record.verified:
        return record, Confirmation(Confirmed.ALREADY, record.id)
    if record is None or record.state != AWAITING:
        raise ServiceError(Kind.CONFLICT, "nothing_to_confirm", NOTHING_TO_CONFIRM)
    if record.confirm_failures >= max_failures:
        return record, Confirmation(Confirmed.LOCKED, record.id)
    return record, None


async def confirm_possession(
    sessions: SessionFactory,
    token_hash: str,
    passport_no: str,
    now: datetime,
    *,
    pepper: str,
    max_failures: int = MAX_CONFIRM_FAILURES,
) -> Confirmation:
    """Verify the handover of the delivery behind ``token_hash`` with the passport number.

    Three steps, so that no transaction is open during the argon2 check (~0.1 s of CPU; on
    SQLite a write transaction holds the one write lock and every writer would wait): a short
    read of the handover and the stored hash; the check, off the event loop; a write transaction
    that locks the delivery and handover, re-checks that the same handover still awaits this
    confirmation, and commits the outcome.

    A wrong number is counted on the handover and *returned* (``WRONG``, or ``LOCKED`` once
    the limit is reached) rather than raised; :func:`confirmation_error` gives the refusal to
    show. Raises :class:`ServiceError` not_found (no such delivery) and conflict (nothing to
    confirm, or the handover changed while the number was checked).
    """
    async with sessions() as session:
        delivery = await delivery_by_token_hash(session, token_hash)
        if delivery is None:
            raise ServiceError(Kind.NOT_FOUND, "unknown_tracking", "no delivery for this link")
        record, early = _gate(
            await _open_handover(session, delivery.id, for_update=False), max_failures
        )
        if early is not None:
            return early
        application = await session.get(Application, delivery.application_id)
        pending = _Pending(
            delivery.id, record.id, application.passport_no_hash if application else None
        )
    # the try is counted before the check, in one statement, and committed: however many
    # confirmations arrive at once, at most max_failures passport checks run per handover
    async with transaction(sessions) as session:
        early = await _reserve_try(session, pending, max_failures)
    if early is not None:
        return early
    stored = pending.stored_hash
    matches = stored is not None and await passport_matches(pepper, stored, passport_no)
    async with transaction(sessions) as session:
        return await _record_confirmation(
            session, pending, matches, now=now, max_failures=max_failures
        )


async def _reserve_try(
    session: AsyncSession, pending: _Pending, max_failures: int
) -> Confirmation | None:
    """One more wrong number counted on the handover while it awaits confirmation and is under
    the limit (UPDATE … RETURNING: atomic across requests and processes); None when the try
    may go on, else the answer that needs no check (locked, already verified)."""
    taken = await session.execute(
        update(Handover)
        .where(
            Handover.id == pending.handover_id,
            Handover.state == AWAITING,
            Handover.verified.is_(False),
            Handover.confirm_failures < max_failures,
        )
        .values(confirm_failures=Handover.confirm_failures + 1)
        .returning(Handover.confirm_failures)
    )
    if taken.scalar_one_or_none() is not None:
        return None
    record = await session.get(Handover, pending.handover_id, populate_existing=True)
    _, early = _gate(record, max_failures)
    return early if early is not None else Confirmation(Confirmed.LOCKED, pending.handover_id)


async def _record_confirmation(
    session: AsyncSession, pending: _Pending, matches: bool, *, now: datetime, max_failures: int
) -> Confirmation:
    delivery = await session.get(Delivery, pending.delivery_id, with_for_update=True)
    application = (
        await session.get(Application, delivery.application_id) if delivery is not None else None
    )
    if delivery is None or application is None:
        raise ServiceError(Kind.NOT_FOUND, "unknown_tracking", "no delivery for this link")
    # the try is already counted on the handover (_reserve_try): the gate checks its state only
    record, early = _gate(
        await _open_handover(session, pending.delivery_id, for_update=True), max_failures + 1
    )
    if early is not None:
        return early
    if record.id != pending.handover_id or application.passport_no_hash != pending.stored_hash:
        # a new handover, or a new passport number, while the number was being checked
        raise ServiceError(
            Kind.CONFLICT,
            "handover_changed",
            "Serah terima berubah; coba lagi. / The handover changed; please try again.",
        )
    if not matches:  # counted already
        audit.record(
            session,
            at=now,
            actor="applicant",
            action="handover.confirm_failed",
            entity="handover",
            entity_id=record.id,
            office_id=delivery.office_id,
            after={"confirm_failures": record.confirm_failures},
        )
        if record.confirm_failures >= max_failures:
            await items.open_exception(
                session,
                office_id=delivery.office_id,
                delivery_id=delivery.id,
                shipment_id=record.shipment_id,
                kind=ExceptionKind.HANDOVER_LOCKED,
                detail=f"{max_failures} wrong passport numbers on the confirmation page",
                dedupe_key=f"handover_locked:{record.id}",
                now=now,
            )
            return Confirmation(Confirmed.LOCKED, record.id)
        return Confirmation(Confirmed.WRONG, record.id)
    record.confirm_failures = max(0, record.confirm_failures - 1)  # a right number: given back
    await _verify(session, delivery, record, actor="applicant", now=now, reviewer_id=None)
    await lifecycle.record_custody(
        session,
        delivery_id=delivery.id,
        shipment_id=record.shipment_id,
        holder="applicant",
        holder_ref="confirmed",
        occurred_at=now,
        evidence={"handover_id": record.id, "method": "passport_number"},
        recorded_by="applicant",
        now=now,
    )
    return Confirmation(Confirmed.VERIFIED, record.id)


async def _verify(
    session: AsyncSession,
    delivery: Delivery,
    record: Handover,
    *,
    actor: str,
    now: datetime,
    reviewer_id: int | None,
) -> None:
    before = record.state
    record.state = VERIFIED
    record.verified = True
    record.verified_at = now
    record.reviewer_id = reviewer_id
    audit.record(
        session,
        at=now,
        actor=actor,
        action="handover.verified",
        entity="handover",
        entity_id=record.id,
        office_id=delivery.office_id,
        before={"state": before},
        after={"state": VERIFIED},
    )
    if lifecycle.move_delivery(session, delivery, DeliveryState.HANDED_OVER, actor=actor, now=now):
        delivery.handed_over_at = now
        await notices.queue(
            session, "applicant_handover_verified", delivery, now=now, key=record.id
        )
    await items.resolve_exceptions(
        session,
        delivery_id=delivery.id,
        kinds=(*REVIEW_KINDS, "handover_locked"),
        by=actor,
        resolution="handover verified",
        now=now,
    )
    log.info("handover_verified", delivery_id=delivery.id, handover_id=record.id)


# --------------------------------------------------------------------------------------------
# A dispatcher reviews


async def review(
    session: AsyncSession,
    handover_id: int,
    reviewer: int,
    approve: bool,
    reason: str,
    *,
    now: datetime,
    office_id: int,
) -> Handover:
    """Approve (verified, handed over) or refuse (delivery needs attention) a handover.

    ``reviewer`` is the staff user's id; ``office_id`` is the reviewer's office, which must be
    the delivery's (invariant 5: staff act on their own office only; another office's handover
    is "not found", not "forbidden", so ids of other offices are not confirmed to exist).
    """
    record = await session.get(Handover, handover_id, with_for_update=True)
    delivery = await session.get(Delivery, record.delivery_id) if record is not None else None
    if record is None or delivery is None or delivery.office_id != office_id:
        raise ServiceError(Kind.NOT_FOUND, "unknown_handover", "no such handover")
    if record.verified or record.state == REFUSED:
        raise ServiceError(Kind.CONFLICT, "handover_closed", "this handover is already decided")
    if not reason.strip():
        raise ServiceError(Kind.INVALID, "reason_required", "a reason is required")
    actor = f"staff:{reviewer}"
    if approve:
        await _verify(session, delivery, record, actor=actor, now=now, reviewer_id=reviewer)
        audit.record(
            session,
            at=now,
            actor=actor,
            action="handover.reviewed",
            entity="handover",
            entity_id=record.id,
            office_id=delivery.office_id,
            after={"approved": True},
            reason=reason,
        )
        return record
    before = record.state
    record.state = REFUSED
    record.reviewer_id = reviewer
    audit.record(
        session,
        at=now,
        actor=actor,
        action="handover.reviewed",
        entity="handover",
        entity_id=record.id,
        office_id=delivery.office_id,
        before={"state": before},
        after={"state": REFUSED, "approved": False},
        reason=reason,
    )
    lifecycle.move_delivery(
        session,
        delivery,
        DeliveryState.NEEDS_ATTENTION,
        actor=actor,
        now=now,
        reason=f"handover refused: {reason}",
    )
    await items.resolve_exceptions(
        session,
        delivery_id=delivery.id,
        kinds=REVIEW_KINDS,
        by=actor,
        resolution="handover refused",
        now=now,
    )
    await items.open_exception(
        session,
        office_id=delivery.office_id,
        delivery_id=delivery.id,
        shipment_id=record.shipment_id,
        kind=ExceptionKind.HANDOVER_REFUSED,
        detail="a dispatcher refused the courier's handover",
        dedupe_key=f"handover_refused:{record.id}",
        now=now,
    )
    return record
