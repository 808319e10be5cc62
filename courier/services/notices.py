"""Telling applicants: queuing a message with the event that causes it, and the sender's use cases.

**Queue** (:func:`queue`): every event an applicant hears about writes one outbox row in the
transaction of the event itself (opted in, booked, out for delivery, failed attempt, returned,
deadline D-10/D-3, delivered, handover verified). The row's ``dedupe_key`` is the event's
(``kind:delivery:what``): a poll repeating a scan, a watcher waking twice, queue it once. Its
payload holds the facts of the moment (courier, waybill, a date), never the applicant's phone or
e-mail: those are read when the message is sent, so a corrected phone number is used.

**Send** (the ``outbox`` loop of ``courier work``, worker/outbox.py):

1. :func:`prepare` a claimed row: a staff kind is closed (its item is in the exceptions queue);
   a message the applicant opted out of is closed; a non-urgent message in the quiet hours is
   put back until they end (no try counted); otherwise the rendered texts and the channels still
   to do, each with its recipient.
2. the loop sends on each channel; :func:`record_sent` writes one ``notification_sends`` row per
   channel that went out (unique on the row's key and the channel, so a retry after a partial
   failure never repeats a channel).
3. :func:`finish`: all done → ``sent_at``; a failure → the next try after the one backoff
   policy (core/backoff, ``notify.retry_first_seconds`` doubling to ``retry_cap_seconds``);
   after ``notify.max_attempts`` the row is given up (``failed_at``) and an exception item asks
   dispatch to call the applicant: never silent, never retried in a hot loop.

Every write after the claim is a compare-and-set on ``lease_owner``: a sender whose lease was
taken over changes nothing. A message may still leave twice when a sender dies between the send
and :func:`record_sent`; the e-mail's Message-ID and the gateway's ``Idempotency-Key`` are the
row's key and channel, so the provider and the mail client can fold the copy.

The opt-out link (:func:`optout_token`) is ``/n/stop/{delivery}.{hmac}``: the HMAC is keyed from
the passport pepper (its own purpose), so nothing is stored and a guessed link gets the 404.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.backoff import exponential_backoff
from core.clock import to_wib
from courier.config import Settings
from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import (
    Application,
    Delivery,
    NotificationSend,
    NotifyOptOut,
    Office,
    OutboxItem,
    Shipment,
)
from courier.domain import messages, transit
from courier.domain.exception_kinds import ExceptionKind
from courier.services import audit, hashing, items

log = structlog.get_logger("courier.notices")

OPTOUT_PURPOSE = "notify-optout"
ACTOR = "applicant"


async def queue(
    session: AsyncSession,
    kind: str,
    delivery: Delivery,
    *,
    now: datetime,
    key: str | int,
    facts: dict[str, Any] | None = None,
) -> int | None:
    """Queue the applicant message ``kind`` about ``delivery``, once per ``key``."""
    if kind not in messages.TEMPLATES:
        raise ValueError(f"no message template for {kind!r}")
    return await items.queue_outbox(
        session,
        kind=kind,
        delivery_id=delivery.id,
        payload={"delivery_id": delivery.id, **(facts or {})},
        dedupe_key=f"{kind.removeprefix('applicant_')}:{delivery.id}:{key}",
        now=now,
    )


def deadline_facts(delivery: Delivery) -> dict[str, Any]:
    """The collect-by date as a message shows it (a WIB calendar day)."""
    if delivery.collect_by is None:
        return {}
    return {"date": to_wib(delivery.collect_by).date().isoformat()}


async def queue_booked(
    session: AsyncSession, delivery: Delivery, shipment: Shipment, *, now: datetime
) -> int | None:
    """The courier has the parcel's waybill: who brings it, under which number, and when."""
    return await queue(
        session,
        "applicant_booked",
        delivery,
        now=now,
        key=shipment.id,
        facts={
            "courier": transit.courier_name(shipment.courier_code),
            "waybill": shipment.waybill,
            "date": transit.expected_arrival(shipment.courier_code, now).isoformat(),
        },
    )


def optout_token(settings: Settings, delivery_id: int) -> str:
    key = hashing.derive_key(settings.passport_pepper, OPTOUT_PURPOSE)
    mac = hmac.new(key, str(delivery_id).encode(), sha256).hexdigest()[:32]
    return f"{delivery_id}.{mac}"


def optout_delivery(settings: Settings, token: str) -> int | None:
    """The delivery an opt-out token names, or None when it is not one of ours."""
    head, _, mac = token.partition(".")
    if not head.isdigit() or len(head) > 18 or not mac:
        return None
    return int(head) if hmac.compare_digest(optout_token(settings, int(head)), token) else None


@dataclass(frozen=True, slots=True)
class OptOutView:
    already: bool


async def opt_out(ctx: AppContext, token: str) -> OptOutView | None:
    """Stop the non-essential messages of the delivery ``token`` names; None: no such link."""
    delivery_id = optout_delivery(ctx.settings, token)
    if delivery_id is None:
        return None
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        delivery = await session.get(Delivery, delivery_id, with_for_update=True)
        if delivery is None:
            return None
        new_id = await items.insert_ignore(
            session,
            NotifyOptOut,
            {"delivery_id": delivery.id, "opted_out_at": now},
            key="delivery_id",
        )
        if new_id is None:
            return OptOutView(already=True)
        audit.record(
            session,
            at=now,
            actor=ACTOR,
            action="delivery.notify_opted_out",
            entity="delivery",
            entity_id=delivery.id,
            office_id=delivery.office_id,
            after={"notify": "essential_only"},
        )
    return OptOutView(already=False)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One channel still to send: its name, kind (email | sms | whatsapp) and recipient."""

    channel: str
    medium: str
    to: str
    key: str  # the row's key and the channel: Message-ID / Idempotency-Key


@dataclass(frozen=True, slots=True)
class Prepared:
    outbox_id: int
    kind: str
    rendered: messages.Rendered | None  # None: nothing to send (closed or put back)
    outgoing: tuple[Outgoing, ...] = ()
    outcome: str = "send"  # send | closed | quiet


async def _owned(session: AsyncSession, outbox_id: int, owner: str) -> OutboxItem | None:
    row = await session.get(OutboxItem, outbox_id, with_for_update=True)
    if row is None or row.lease_owner != owner or row.sent_at or row.failed_at:
        return None
    return row


def _scrub(row: OutboxItem) -> None:
    """The tracking link is a credential: kept in the row only until it went out (or never
    will)."""
    if "link" in (row.payload or {}):
        row.payload = {**row.payload, "link": "[removed]"}


def _close(row: OutboxItem, now: datetime, why: str) -> None:
    _scrub(row)
    row.sent_at = now
    row.error = why
    row.lease_owner = None
    row.lease_until = None


def _facts(
    settings: Settings, row: OutboxItem, delivery: Delivery, office: Office
) -> dict[str, Any]:
    contact = settings.office(office.code).get("contact", {})
    facts = dict(row.payload or {})
    facts.setdefault("office_name", office.name)
    facts.setdefault("office_phone", contact.get("phone") or (office.sender or {}).get("phone"))
    facts["optout"] = (
        f"{settings.base_url.rstrip('/')}/n/stop/{optout_token(settings, delivery.id)}"
    )
    return facts


def _outgoing(
    settings: Settings, row: OutboxItem, delivery: Delivery, app: Application, done: set[str]
) -> tuple[Outgoing, ...]:
    notify = settings.notify
    out: list[Outgoing] = []
    email = str((delivery.address or {}).get("email") or "")
    if notify.email is not None and email and "email" not in done:
        out.append(Outgoing("email", "email", email, f"{row.dedupe_key}:email"))
    for gw in notify.gateways:
        if gw.name not in done and app.phone:
            out.append(Outgoing(gw.name, gw.channel, app.phone, f"{row.dedupe_key}:{gw.name}"))
    return tuple(out)


async def prepare(ctx: AppContext, outbox_id: int, *, owner: str) -> Prepared | None:
    """What to send for a claimed row (see the module doc); None when the lease was lost."""
    now = ctx.clock.now()
    settings = ctx.settings
    async with transaction(ctx.sessions) as session:
        row = await _owned(session, outbox_id, owner)
        if row is None:
            return None
        if row.kind in messages.STAFF_KINDS:
            _close(row, now, "staff: shown in the exceptions queue")
            return Prepared(row.id, row.kind, None, outcome="closed")
        template = messages.TEMPLATES.get(row.kind)
        delivery = await session.get(Delivery, row.delivery_id) if row.delivery_id else None
        if template is None or delivery is None:
            _close(row, now, f"unknown kind {row.kind!r}" if template is None else "no delivery")
            log.error("notify.unsendable", outbox_id=row.id, kind=row.kind)
            return Prepared(row.id, row.kind, None, outcome="closed")
        opted_out = await session.scalar(
            select(NotifyOptOut.id).where(NotifyOptOut.delivery_id == delivery.id)
        )
        if opted_out is not None and not template.essential:
            _close(row, now, "opted out")
            return Prepared(row.id, row.kind, None, outcome="closed")
        if not template.urgent:
            until = messages.quiet_until(
                now, settings.notify.quiet_start, settings.notify.quiet_end
            )
            if until is not None:
                row.next_attempt_at = until
                row.lease_owner = None
                row.lease_until = None
                return Prepared(row.id, row.kind, None, outcome="quiet")
        app = await session.get_one(Application, delivery.application_id)
        office = await session.get_one(Office, delivery.office_id)
        done = set(
            (
                await session.scalars(
                    select(NotificationSend.channel).where(NotificationSend.outbox_id == row.id)
                )
            ).all()
        )
        outgoing = _outgoing(settings, row, delivery, app, done)
        if not outgoing:
            _close(row, now, "sent" if done else "no channel for this applicant")
            return Prepared(row.id, row.kind, None, outcome="closed")
        rendered = messages.render(row.kind, _facts(settings, row, delivery, office))
        return Prepared(row.id, row.kind, rendered, outgoing)


async def record_sent(ctx: AppContext, outbox_id: int, channel: str, key: str) -> None:
    """One channel went out: remembered at once, whatever happens to the others."""
    async with transaction(ctx.sessions) as session:
        await items.insert_ignore(
            session,
            NotificationSend,
            {
                "outbox_id": outbox_id,
                "channel": channel,
                "dedupe_key": key[:120],
                "language": "id+en",
                "sent_at": ctx.clock.now(),
            },
        )


async def finish(ctx: AppContext, outbox_id: int, *, owner: str, failures: dict[str, str]) -> str:
    """Close the row after a send: ``sent``, ``retry`` or ``failed`` (given up, item opened).
    ``failures`` names each channel that failed and why (an exception's type, no text)."""
    now = ctx.clock.now()
    notify = ctx.settings.notify
    async with transaction(ctx.sessions) as session:
        row = await _owned(session, outbox_id, owner)
        if row is None:
            return "lost"
        row.lease_owner = None
        row.lease_until = None
        if not failures:
            _scrub(row)
            row.sent_at = now
            row.error = None
            return "sent"
        row.attempts += 1
        row.error = ", ".join(f"{k}: {v}" for k, v in sorted(failures.items()))[:500]
        if row.attempts < notify.max_attempts:
            delay = exponential_backoff(
                row.attempts - 1,
                initial=notify.retry_first_seconds,
                cap=notify.retry_cap_seconds,
                jitter=notify.retry_first_seconds / 4,
            )
            row.next_attempt_at = now + timedelta(seconds=delay)
            log.warning(
                "notify.retry",
                outbox_id=row.id,
                kind=row.kind,
                attempts=row.attempts,
                channels=",".join(sorted(failures)),
                retry_in_s=int(delay),
            )
            return "retry"
        row.failed_at = now
        _scrub(row)
        delivery = await session.get(Delivery, row.delivery_id) if row.delivery_id else None
        if delivery is not None:
            await items.open_exception(
                session,
                office_id=delivery.office_id,
                delivery_id=delivery.id,
                kind=ExceptionKind.NOTIFY_FAILED,
                detail=f"{row.kind} not sent after {row.attempts} tries ({row.error})",
                dedupe_key=f"notify_failed:{row.id}",
                now=now,
            )
        log.error("notify.gave_up", outbox_id=row.id, kind=row.kind, attempts=row.attempts)
        return "failed"
