"""Intake: the office registers applications and marks passports ready (HTTP and CSV alike).

Only what delivery needs is kept. The passport number is never stored: it is kept as an argon2id
hash (argon2-cffi ``PasswordHasher``, random salt per hash) of the office-wide secret pepper
(``security.passport_pepper``) plus the normalised number. Why argon2 and not a plain HMAC:
passport numbers are a small space (~2.6·10⁸), so a fast hash is brute-forced in seconds by
anyone holding both a database backup and the pepper; argon2's cost makes that impractical, and
the pepper keeps a database-only leak useless. Verification happens once per handover, so the
cost (~50 ms) is paid rarely.

Every call is idempotent: sending the same data again changes nothing and writes no audit entry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import to_wib
from courier.context import AppContext
from courier.db.engine import SessionFactory, transaction
from courier.db.models import Application, Delivery, Office
from courier.domain import deadlines, text
from courier.domain.eligibility import PRIORITY_KINDS
from courier.domain.phones import to_e164
from courier.domain.states import DeliveryState, check_delivery_move
from courier.services import audit, hashing
from courier.services.errors import Kind, ServiceError, invalid
from courier.services.staff import Caller
from courier.services.wakeups import notify_queued
from schemas import FieldError

log = structlog.get_logger("courier.intake")

APPLICATION_NO = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{2,31}")
PASSPORT_NO = re.compile(r"[A-Z]{1,2}[0-9]{7}")
CHANGED = "[changed]"  # what the audit log says of a personal field that changed
_PII_FIELDS = frozenset({"applicant_name", "date_of_birth", "phone"})
_FUTURE_SKEW = timedelta(minutes=10)  # clocks of the office's system and ours may disagree
_OLDEST_ISSUE = timedelta(days=400)  # older passports are long past their collect-by date


# --------------------------------------------------------------------------------------------
# Passport numbers (argon2id of the pepper plus the normalised number: courier/services/hashing)


def normalise_passport_no(raw: str) -> str:
    return "".join(raw.split()).upper()


def hash_passport_no(pepper: str, passport_no: str) -> str:
    return hashing.argon2_hash(pepper + normalise_passport_no(passport_no))


def verify_passport_no(pepper: str, stored_hash: str, passport_no: str) -> bool:
    """True when ``passport_no`` is the number ``stored_hash`` was made from."""
    return hashing.argon2_verify(stored_hash, pepper + normalise_passport_no(passport_no))


async def passport_matches(pepper: str, stored_hash: str, passport_no: str) -> bool:
    """:func:`verify_passport_no` off the event loop, one argon2 run per core at a time."""
    return await hashing.argon2_verify_async(
        stored_hash, pepper + normalise_passport_no(passport_no)
    )


async def new_passport_hash(pepper: str, passport_no: str) -> str:
    """:func:`hash_passport_no` off the event loop, one argon2 run per core at a time."""
    return await hashing.argon2_hash_async(pepper + normalise_passport_no(passport_no))


# --------------------------------------------------------------------------------------------
# Parsing (pure): the same rules for the HTTP API and the CSV import


@dataclass(frozen=True, slots=True)
class ApplicationData:
    application_no: str
    applicant_name: str
    date_of_birth: date
    phone: str  # E.164
    priority_kind: str | None
    express: bool


@dataclass(frozen=True, slots=True)
class ReadyData:
    issued_at: datetime
    passport_no: str  # normalised; hashed before it is stored


def check_application_no(value: str, path: str = "url.application_no") -> list[FieldError]:
    if APPLICATION_NO.fullmatch(value):
        return []
    return [FieldError(path, "3-32 characters: letters, digits, dot or dash")]


def parse_application(
    application_no: str, raw: Mapping[str, Any], *, today: date, prefix: str = "$"
) -> tuple[ApplicationData | None, list[FieldError]]:
    """Values already shaped by ``schemas/api/application_put.json`` (or CSV text) → data."""
    errors: list[FieldError] = []
    name, name_errors = text.clean_name(
        str(raw.get("applicant_name") or ""), f"{prefix}.applicant_name"
    )
    errors += name_errors
    if not name_errors and (not name or len(name) > 120):
        errors.append(FieldError(f"{prefix}.applicant_name", "1-120 characters are required"))
    dob: date | None = None
    try:
        dob = date.fromisoformat(str(raw.get("date_of_birth") or ""))
    except ValueError:
        errors.append(FieldError(f"{prefix}.date_of_birth", "a date as YYYY-MM-DD is required"))
    if dob is not None and not (date(1900, 1, 1) <= dob <= today):
        errors.append(FieldError(f"{prefix}.date_of_birth", "must be a past date after 1900"))
    phone = ""
    try:
        phone = to_e164(str(raw.get("phone") or ""))
    except ValueError as err:
        errors.append(FieldError(f"{prefix}.phone", str(err)))
    kind = raw.get("priority_kind") or None
    if kind is not None and kind not in PRIORITY_KINDS:
        errors.append(
            FieldError(f"{prefix}.priority_kind", "one of elderly, disabled, sick, or empty")
        )
    express = raw.get("express", False)
    if not isinstance(express, bool):
        errors.append(FieldError(f"{prefix}.express", "true or false"))
    if errors or dob is None:
        return None, errors
    return ApplicationData(application_no, name, dob, phone, kind, bool(express)), []


def parse_ready(
    raw: Mapping[str, Any], *, now: datetime, prefix: str = "$"
) -> tuple[ReadyData | None, list[FieldError]]:
    errors: list[FieldError] = []
    issued: datetime | None = None
    try:
        issued = datetime.fromisoformat(str(raw.get("issued_at") or "").strip())
    except ValueError:
        errors.append(FieldError(f"{prefix}.issued_at", "an ISO 8601 time is required"))
    if issued is not None and issued.tzinfo is None:
        errors.append(FieldError(f"{prefix}.issued_at", "the time needs an offset, e.g. +07:00"))
        issued = None
    if issued is not None and issued > now + _FUTURE_SKEW:
        errors.append(FieldError(f"{prefix}.issued_at", "must not be in the future"))
        issued = None
    if issued is not None and issued < now - _OLDEST_ISSUE:
        errors.append(FieldError(f"{prefix}.issued_at", "must be within the last 400 days"))
        issued = None
    number = normalise_passport_no(str(raw.get("passport_no") or ""))
    if not PASSPORT_NO.fullmatch(number):
        errors.append(FieldError(f"{prefix}.passport_no", "one or two letters then seven digits"))
    if errors or issued is None:
        return None, errors
    return ReadyData(issued, number), []


def delivery_priority(priority_kind: str | None, express: bool) -> int:
    """Higher first: a priority case (elderly, disabled, sick) before an express passport."""
    return (2 if priority_kind else 0) + (1 if express else 0)


# --------------------------------------------------------------------------------------------
# Use cases of the office's system (HTTP): one transaction each, a frozen view back


@dataclass(frozen=True, slots=True)
class ApplicationView:
    """What the office's system gets back: no personal data it did not just send."""

    application_no: str
    state: str
    outcome: str  # created | updated | unchanged; ready | updated | unchanged
    issued_at: datetime | None
    collect_by: datetime | None


def _application_view(app: Application, outcome: str) -> ApplicationView:
    return ApplicationView(app.application_no, app.state, outcome, app.issued_at, app.collect_by)


async def register_application(
    ctx: AppContext, caller: Caller, application_no: str, fields: Mapping[str, Any]
) -> ApplicationView:
    """Register or replace an application of the caller's office from the API's fields
    (``schemas/api/application_put.json``); idempotent."""
    now = ctx.clock.now()
    data, errors = parse_application(application_no, fields, today=to_wib(now).date())
    if data is None:
        raise invalid(errors)
    async with transaction(ctx.sessions) as session:
        office = await session.get_one(Office, caller.office_id)
        app, outcome = await upsert_application(
            session, office=office, data=data, now=now, actor=caller.actor
        )
        return _application_view(app, outcome)


async def passport_ready(
    ctx: AppContext, caller: Caller, application_no: str, fields: Mapping[str, Any]
) -> ApplicationView:
    """The passport is printed (``schemas/api/application_ready.json``); idempotent. The argon2
    hash is made before the one write transaction (:func:`passport_hash_for`)."""
    now = ctx.clock.now()
    ready, errors = parse_ready(fields, now=now)
    if ready is None:
        raise invalid(errors)
    passport_hash = await passport_hash_for(
        ctx.sessions,
        office_id=caller.office_id,
        application_no=application_no,
        passport_no=ready.passport_no,
        pepper=ctx.settings.passport_pepper,
    )
    async with transaction(ctx.sessions) as session:
        office = await session.get_one(Office, caller.office_id)
        app, outcome = await mark_ready(
            session,
            office=office,
            application_no=application_no,
            ready=ready,
            passport_hash=passport_hash,
            now=now,
            actor=caller.actor,
        )
        return _application_view(app, outcome)


# --------------------------------------------------------------------------------------------
# Steps (each runs inside the caller's transaction; the CSV import batches them)


async def passport_hash_for(
    sessions: SessionFactory, *, office_id: int, application_no: str, passport_no: str, pepper: str
) -> str:
    """The hash to store for ``passport_no``: the stored one when it already matches (argon2
    salts are random, so hashing again would look like a change), else a fresh one.

    The argon2 work (~50 ms of CPU each) runs off the event loop and outside any transaction:
    on SQLite a write transaction holds the database's one write lock, and every other writer
    would wait for the hash."""
    async with sessions() as session:
        stored = (
            await session.execute(
                select(Application.passport_no_hash).where(
                    Application.office_id == office_id,
                    Application.application_no == application_no,
                )
            )
        ).scalar_one_or_none()
    if stored is not None and await passport_matches(pepper, stored, passport_no):
        return stored
    return await new_passport_hash(pepper, passport_no)


async def find_application(
    session: AsyncSession, office_id: int, application_no: str
) -> Application | None:
    query = select(Application).where(
        Application.office_id == office_id, Application.application_no == application_no
    )
    return (await session.execute(query)).scalar_one_or_none()


async def delivery_of(session: AsyncSession, application_id: int) -> Delivery | None:
    query = select(Delivery).where(Delivery.application_id == application_id)
    return (await session.execute(query)).scalar_one_or_none()


# built once per dialect, the values bound per request (every PUT runs it)
_INSERT_APPLICATION = {
    name: dialect.insert(Application)
    .on_conflict_do_nothing(index_elements=["office_id", "application_no"])
    .returning(Application.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


async def _insert_application(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """INSERT … ON CONFLICT (office_id, application_no) DO NOTHING; the new id or None."""
    stmt = _INSERT_APPLICATION[session.get_bind().dialect.name]
    new_id = (await session.execute(stmt, values)).scalar_one_or_none()
    return int(new_id) if new_id is not None else None


def _audit_view(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (CHANGED if k in _PII_FIELDS else _plain(v)) for k, v in fields.items()}


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


async def upsert_application(
    session: AsyncSession, *, office: Office, data: ApplicationData, now: datetime, actor: str
) -> tuple[Application, str]:
    """Register or replace an application. Returns it and ``created``/``updated``/``unchanged``."""
    fields: dict[str, Any] = {
        "applicant_name": data.applicant_name,
        "date_of_birth": data.date_of_birth,
        "phone": data.phone,
        "priority_kind": data.priority_kind,
        "express": data.express,
    }
    # insert unless it exists (ON CONFLICT waits for a racing identical request, then does
    # nothing), then read it back, whoever inserted it: concurrent registrations never collide
    new_id = await _insert_application(
        session,
        {
            "office_id": office.id,
            "application_no": data.application_no,
            "state": "registered",
            "created_at": now,
            "updated_at": now,
            **fields,
        },
    )
    app = await find_application(session, office.id, data.application_no)
    if app is None:  # inserted or already there: the row is visible to this transaction
        raise RuntimeError("application vanished after its insert")
    if new_id is not None:
        audit.record(
            session,
            at=now,
            actor=actor,
            action="application.registered",
            entity="application",
            entity_id=app.id,
            office_id=office.id,
            after={
                "application_no": data.application_no,
                "state": "registered",
                "priority_kind": data.priority_kind,
                "express": data.express,
            },
        )
        log.info("application_registered", application_id=app.id, office_code=office.code)
        return app, "created"
    changed = {k: v for k, v in fields.items() if getattr(app, k) != v}
    if not changed:
        return app, "unchanged"
    before = {k: getattr(app, k) for k in changed}
    for key, value in changed.items():
        setattr(app, key, value)
    app.updated_at = now
    delivery = await delivery_of(session, app.id)
    if delivery is not None:
        delivery.priority = delivery_priority(app.priority_kind, app.express)
        delivery.updated_at = now
    audit.record(
        session,
        at=now,
        actor=actor,
        action="application.updated",
        entity="application",
        entity_id=app.id,
        office_id=office.id,
        before=_audit_view(before),
        after=_audit_view(changed),
    )
    log.info("application_updated", application_id=app.id, office_code=office.code)
    return app, "updated"


async def mark_ready(
    session: AsyncSession,
    *,
    office: Office,
    application_no: str,
    ready: ReadyData,
    passport_hash: str,
    now: datetime,
    actor: str,
) -> tuple[Application, str]:
    """The passport is printed: store its hash, issued_at and collect-by date; an opted-in
    delivery waiting for it moves ``requested → queued``. Returns the application and
    ``ready``/``updated``/``unchanged``. ``passport_hash`` comes from :func:`passport_hash_for`,
    computed before the caller's transaction opened."""
    app = await find_application(session, office.id, application_no)
    if app is None:
        raise ServiceError(
            Kind.NOT_FOUND,
            "unknown_application",
            "no application with that number here",
            [FieldError("url.application_no", "not registered at this office")],
        )
    same_number = app.passport_no_hash == passport_hash
    if app.state == "ready" and same_number and app.issued_at == ready.issued_at:
        return app, "unchanged"
    outcome = "updated" if app.state == "ready" else "ready"
    before: dict[str, Any] = {"state": app.state, "issued_at": _plain(app.issued_at)}
    collect_by = deadlines.collect_by(ready.issued_at, office.collect_days)
    app.passport_no_hash = passport_hash
    app.issued_at = ready.issued_at
    app.collect_by = collect_by
    app.state = "ready"
    app.updated_at = now
    after: dict[str, Any] = {
        "state": "ready",
        "issued_at": _plain(ready.issued_at),
        "collect_by": _plain(collect_by),
    }
    if not same_number:
        after["passport_no"] = "[set]" if outcome == "ready" else CHANGED
    audit.record(
        session,
        at=now,
        actor=actor,
        action="application.ready" if outcome == "ready" else "application.ready_updated",
        entity="application",
        entity_id=app.id,
        office_id=office.id,
        before=before,
        after=after,
    )
    delivery = await delivery_of(session, app.id)
    if delivery is not None:
        await _delivery_on_ready(session, delivery, collect_by, now=now, actor=actor)
    log.info("application_ready", application_id=app.id, office_code=office.code, outcome=outcome)
    return app, outcome


async def _delivery_on_ready(
    session: AsyncSession, delivery: Delivery, collect_by: datetime, *, now: datetime, actor: str
) -> None:
    delivery.collect_by = collect_by
    delivery.updated_at = now
    if delivery.state != DeliveryState.REQUESTED:
        return
    check_delivery_move(DeliveryState.REQUESTED, DeliveryState.QUEUED)
    delivery.state = DeliveryState.QUEUED.value
    delivery.next_attempt_at = now
    audit.record(
        session,
        at=now,
        actor=actor,
        action="delivery.queued",
        entity="delivery",
        entity_id=delivery.id,
        office_id=delivery.office_id,
        before={"state": "requested"},
        after={"state": "queued"},
        reason="passport ready",
    )
    await notify_queued(session)
    log.info("delivery_queued", delivery_id=delivery.id)
