"""The applicant speaks back through the tracking link: a problem report, then a rating.

**Report** (:func:`report_problem`): once the courier says the passport was delivered, the
applicant can report that they did not receive it, that the envelope's seal was broken, or that
someone else received it. That opens an ``applicant_report`` item in the dispatch exceptions
queue, in the same transaction as the audit entry. The item's ``detail`` (shown in lists, on
shared screens) holds the reason and the applicant's words with names, phones and streets
masked (:func:`courier.domain.text.mask_personal`); the words as written are kept in the audit
entry's reason, which only the delivery's own view reads. One report per reason and delivery:
sending it again changes nothing (the item's dedupe key), so a reload or a double tap is
harmless and a token holder cannot flood the queue.

**Rate** (:func:`rate`): 1–4 on the IKM scale (sangat baik … tidak baik) with an optional comment,
once per delivery (``ratings.delivery_id`` is unique: a second rating is refused, the first
stays), once the handover is over (verified, collected at the counter) or a problem was
reported. It feeds the couriers' scorecards.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import Delivery, ExceptionItem, Rating, Shipment
from courier.domain import text
from courier.domain.exception_kinds import ExceptionKind, Text
from courier.domain.states import DeliveryState
from courier.services import audit, hashing, items
from courier.services.errors import Kind, ServiceError, invalid
from courier.services.optin import delivery_by_token_hash
from schemas import FieldError

ACTOR = "applicant"
MAX_WORDS = 500
MAX_COMMENT = 500


class Problem(enum.StrEnum):
    NOT_RECEIVED = "not_received"
    SEAL_BROKEN = "seal_broken"
    SOMEONE_ELSE = "someone_else"


PROBLEM_TEXT: dict[Problem, Text] = {
    Problem.NOT_RECEIVED: Text("Paspor belum saya terima", "I did not receive the passport"),
    Problem.SEAL_BROKEN: Text("Segel amplop rusak", "The envelope's seal was broken"),
    Problem.SOMEONE_ELSE: Text(
        "Diterima orang lain tanpa sepengetahuan saya", "Someone else received it without my say"
    ),
}

SCORE_TEXT: dict[int, Text] = {
    4: Text("Sangat baik", "Very good"),
    3: Text("Baik", "Good"),
    2: Text("Kurang baik", "Not so good"),
    1: Text("Tidak baik", "Poor"),
}

# a report is about a parcel the courier says it brought
REPORTABLE = frozenset(
    {DeliveryState.DELIVERED, DeliveryState.HANDED_OVER, DeliveryState.NEEDS_ATTENTION}
)
RATEABLE = frozenset({DeliveryState.HANDED_OVER, DeliveryState.COLLECTED_AT_OFFICE})


def _unknown() -> ServiceError:
    return ServiceError(Kind.NOT_FOUND, "unknown_tracking", "no delivery for this tracking link")


def can_report(state: str, shipment_status: str | None) -> bool:
    return DeliveryState(state) in REPORTABLE and shipment_status == "delivered"


def can_rate(state: str, reported: bool, rated: bool) -> bool:
    return not rated and (DeliveryState(state) in RATEABLE or reported)


@dataclass(frozen=True, slots=True)
class Reported:
    item_id: int | None  # None: this reason was already reported


async def report_problem(ctx: AppContext, token: str, problem: str, words: str) -> Reported:
    try:
        reason = Problem(problem)
    except ValueError:
        choices = ", ".join(p.value for p in Problem)
        raise invalid([FieldError("$.problem", f"one of {choices}")]) from None
    words, errors = text.clean(words.strip(), "$.words", multiline=True)
    if len(words) > MAX_WORDS:
        errors.append(FieldError("$.words", f"at most {MAX_WORDS} characters"))
    if errors:
        raise invalid(errors)
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        delivery = await delivery_by_token_hash(session, hashing.hash_token(token), for_update=True)
        if delivery is None:
            raise _unknown()
        if not can_report(delivery.state, await _status(session, delivery)):
            raise ServiceError(
                Kind.CONFLICT,
                "nothing_to_report",
                "Laporan dapat dikirim setelah kurir mencatat paspor terkirim. / A problem can be "
                "reported once the courier records the passport as delivered.",
            )
        masked = text.mask_personal(words, await items.personal_values(session, delivery))
        label = PROBLEM_TEXT[reason]
        item_id = await items.open_exception(
            session,
            office_id=delivery.office_id,
            delivery_id=delivery.id,
            kind=ExceptionKind.APPLICANT_REPORT,
            detail=f"{label.en}: {masked}" if masked else label.en,
            dedupe_key=f"applicant_report:{delivery.id}:{reason.value}",
            now=now,
        )
        if item_id is not None:
            audit.record(
                session,
                at=now,
                actor=ACTOR,
                action="delivery.problem_reported",
                entity="delivery",
                entity_id=delivery.id,
                office_id=delivery.office_id,
                after={"problem": reason.value, "exception_item": item_id},
                reason=words or None,
            )
    return Reported(item_id)


async def _status(session: AsyncSession, delivery: Delivery) -> str | None:
    status = await session.scalar(
        select(Shipment.status)
        .where(Shipment.delivery_id == delivery.id)
        .order_by(Shipment.id.desc())
        .limit(1)
    )
    return None if status is None else str(status)


async def reported(session: AsyncSession, delivery_id: int) -> bool:
    found = await session.scalar(
        select(ExceptionItem.id)
        .where(
            ExceptionItem.delivery_id == delivery_id,
            ExceptionItem.kind == ExceptionKind.APPLICANT_REPORT.value,
        )
        .limit(1)
    )
    return found is not None


@dataclass(frozen=True, slots=True)
class Rated:
    created: bool  # False: this delivery was already rated (the first rating stays)


async def rate(ctx: AppContext, token: str, score: int, comment: str) -> Rated:
    errors: list[FieldError] = []
    if score not in SCORE_TEXT:
        errors.append(FieldError("$.score", "1, 2, 3 or 4"))
    comment, problems = text.clean(comment.strip(), "$.comment", multiline=True)
    errors += problems
    if len(comment) > MAX_COMMENT:
        errors.append(FieldError("$.comment", f"at most {MAX_COMMENT} characters"))
    if errors:
        raise invalid(errors)
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        delivery = await delivery_by_token_hash(session, hashing.hash_token(token), for_update=True)
        if delivery is None:
            raise _unknown()
        if not can_rate(delivery.state, await reported(session, delivery.id), False):
            raise ServiceError(
                Kind.CONFLICT,
                "nothing_to_rate",
                "Penilaian dapat diberikan setelah serah terima selesai. / You can rate the "
                "service once the handover is complete.",
            )
        known = await items.personal_values(session, delivery)
        new_id = await items.insert_ignore(
            session,
            Rating,
            {
                "delivery_id": delivery.id,
                "score": score,
                "comment": text.mask_personal(comment, known) if comment else "",
                "created_at": now,
            },
            key="delivery_id",
        )
        if new_id is not None:
            audit.record(
                session,
                at=now,
                actor=ACTOR,
                action="delivery.rated",
                entity="delivery",
                entity_id=delivery.id,
                office_id=delivery.office_id,
                after={"score": score},
            )
    return Rated(created=new_id is not None)
