"""What the applicant sees and does through their private tracking link (the JSON API and the
tracking page alike): where the passport is, and confirming it arrived.

The tracking token is the credential (only its sha256 is stored); a link can be forwarded, so
the views carry no name, phone, address or receiver.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import to_wib
from core.status import Status
from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import (
    Handover,
    ManifestItem,
    Office,
    RateCounter,
    Rating,
    Shipment,
    TrackingEventRow,
)
from courier.domain import transit
from courier.services import feedback, handover, hashing, ratelimit
from courier.services.errors import Kind, ServiceError
from courier.services.optin import delivery_by_token_hash


@dataclass(frozen=True, slots=True)
class ShipmentStatus:
    courier_code: str
    waybill: str | None
    attempt_no: int
    status: str


@dataclass(frozen=True, slots=True)
class Event:
    occurred_at: datetime
    status: str | None  # None: a courier code we do not map
    location: str


@dataclass(frozen=True, slots=True)
class HandoverStatus:
    state: str
    verified: bool
    verified_at: datetime | None
    attempts_left: int  # wrong passport numbers the applicant may still type


@dataclass(frozen=True, slots=True)
class TrackView:
    state: str  # the delivery's
    collect_by: datetime | None
    shipment: ShipmentStatus | None  # the latest attempt
    events: tuple[Event, ...]  # of the latest attempt, oldest first
    handover: HandoverStatus | None  # the latest
    office_name: str
    office_phone: str | None
    # what the page adds to the JSON view (courier/web/pages.py)
    expected_on: date | None = None  # while the courier has it and before delivery
    public_tracking_url: str | None = None  # the courier's own page for the waybill
    seal_tail: str | None = None  # the last digits of the envelope's seal, to check at the door
    contact: Mapping[str, str] = field(default_factory=dict)  # the office's, from its config
    can_report: bool = False
    reported: bool = False
    rating: int | None = None

    @property
    def can_rate(self) -> bool:
        return feedback.can_rate(self.state, self.reported, self.rating is not None)

    @property
    def attempts_left(self) -> int:
        return self.handover.attempts_left if self.handover is not None else 0


def attempts_left(record: Handover | None) -> int:
    """Wrong passport numbers the applicant may still type before the confirmation locks
    (0 when no handover awaits the applicant)."""
    if record is None or record.state != handover.AWAITING:
        return 0
    return max(0, handover.MAX_CONFIRM_FAILURES - record.confirm_failures)


async def _latest(session: AsyncSession, model: Any, delivery_id: int) -> Any:
    result = await session.execute(
        select(model).where(model.delivery_id == delivery_id).order_by(model.id.desc()).limit(1)
    )
    return result.scalar_one_or_none()


# Links that open nothing, per client address: past this many in the window every lookup from
# that address is refused (429) until the window ends. Generous, since many phones share one
# carrier-grade NAT address; the 256-bit tokens cannot be guessed anyway: this keeps a scanner
# from costing us a database read per try.
MISS_SCOPE = "track_miss"
MISS_LIMIT = 30
MISS_WINDOW = timedelta(minutes=10)


async def _refused_client(session: AsyncSession, key: str, now: datetime) -> int | None:
    row = await session.scalar(
        select(RateCounter).where(RateCounter.scope == MISS_SCOPE, RateCounter.key == key)
    )
    if row is None or row.count < MISS_LIMIT or row.window_start <= now - MISS_WINDOW:
        return None
    return max(1, math.ceil((row.window_start + MISS_WINDOW - now).total_seconds()))


def _too_many(wait: int) -> ServiceError:
    return ServiceError(
        Kind.RATE_LIMITED,
        "too_many_unknown_links",
        "Terlalu banyak tautan yang tidak dikenal; coba lagi nanti. / Too many unknown links; "
        "try again later.",
        retry_after=wait,
    )


async def track(ctx: AppContext, token: str, client: str = "") -> TrackView | None:
    """The delivery behind tracking ``token``, or None (one answer whatever the token was).
    With ``client`` (the caller's address), links that open nothing are counted against it and
    past :data:`MISS_LIMIT` in :data:`MISS_WINDOW` every lookup raises a rate-limited error."""
    now = ctx.clock.now()
    key = ratelimit.key_hash(ratelimit.counter_key(ctx.settings.passport_pepper), client)
    async with ctx.sessions() as session:
        if client:
            wait = await _refused_client(session, key, now)
            if wait is not None:
                raise _too_many(wait)
        delivery = await delivery_by_token_hash(session, hashing.hash_token(token))
        if delivery is None:
            await session.rollback()
            if client:
                async with transaction(ctx.sessions) as write:
                    await ratelimit.take(
                        write, MISS_SCOPE, key, now=now, limit=MISS_LIMIT, window=MISS_WINDOW
                    )
            return None
        shipment: Shipment | None = await _latest(session, Shipment, delivery.id)
        record: Handover | None = await _latest(session, Handover, delivery.id)
        events: tuple[Event, ...] = ()
        if shipment is not None:
            rows = await session.scalars(
                select(TrackingEventRow)
                .where(TrackingEventRow.shipment_id == shipment.id)
                .order_by(TrackingEventRow.occurred_at, TrackingEventRow.id)
            )
            events = tuple(Event(row.occurred_at, row.status, row.location) for row in rows)
        office = await session.get(Office, delivery.office_id)
        seal = None
        if shipment is not None:
            seal = await session.scalar(
                select(ManifestItem.seal_number).where(ManifestItem.shipment_id == shipment.id)
            )
        reported = await feedback.reported(session, delivery.id)
        rating = await session.scalar(select(Rating.score).where(Rating.delivery_id == delivery.id))
    sender = office.sender if office is not None and isinstance(office.sender, dict) else {}
    phone = sender.get("phone")
    return TrackView(
        state=delivery.state,
        collect_by=delivery.collect_by,
        shipment=None
        if shipment is None
        else ShipmentStatus(
            shipment.courier_code, shipment.waybill, shipment.attempt_no, shipment.status
        ),
        events=events,
        handover=None
        if record is None
        else HandoverStatus(
            record.state, record.verified, record.verified_at, attempts_left(record)
        ),
        office_name=office.name if office is not None else "",
        office_phone=phone if isinstance(phone, str) and phone else None,
        expected_on=_expected_on(shipment, now),
        public_tracking_url=None
        if shipment is None
        else transit.public_tracking_url(shipment.courier_code, shipment.waybill),
        seal_tail=seal[-4:] if seal else None,
        contact=_contact(ctx.settings.office(office.code) if office is not None else {}),
        can_report=feedback.can_report(delivery.state, shipment.status if shipment else None),
        reported=reported,
        rating=rating,
    )


_ON_THE_WAY = frozenset(
    {Status.BOOKED, Status.PICKED_UP, Status.IN_TRANSIT, Status.DELIVERY_FAILED}
)


def _expected_on(shipment: Shipment | None, now: datetime) -> date | None:
    """Today once the courier is out to deliver; else the per-courier estimate from booking
    (courier.domain.transit), never a day already past."""
    if shipment is None or shipment.booked_at is None:
        return None
    status = Status(shipment.status)
    today = to_wib(now).date()
    if status is Status.OUT_FOR_DELIVERY:
        return today
    if status not in _ON_THE_WAY:
        return None
    return max(today, transit.expected_arrival(shipment.courier_code, shipment.booked_at))


def _contact(office: Mapping[str, Any]) -> dict[str, str]:
    contact = office.get("contact") or {}
    return {k: str(v) for k, v in contact.items() if k in ("phone", "whatsapp", "hours", "address")}


async def confirm_receipt(ctx: AppContext, token: str, passport_no: str) -> handover.Confirmation:
    """The applicant behind tracking ``token`` confirms possession with the passport number
    printed in it (:func:`courier.services.handover.confirm_possession` owns the rules and keeps
    the slow passport check outside its write transaction)."""
    return await handover.confirm_possession(
        ctx.sessions,
        hashing.hash_token(token),
        passport_no,
        ctx.clock.now(),
        pepper=ctx.settings.passport_pepper,
    )
