"""Offices, staff accounts and API tokens.

Every staff member and every token belongs to one office and sees only its data (invariant 5).
Passwords are argon2id hashes. API tokens are 256-bit random strings shown once; only their
sha256 is stored (a slow hash buys nothing for a 256-bit secret and would slow every request),
with an 8-character prefix kept for listings and revocation. Both through
:mod:`courier.services.hashing`.

Every request looks its token up afresh (no cache), so a revocation, an expiry or a disabled
account refuses the very next request. A token expires (``expires_at``; the default lifetime is
``security.token_lifetime_days``); a token tied to a staff account stops working while that
account is disabled.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

import schemas
from adapters import registry
from courier.context import AppContext
from courier.db.engine import one_statement
from courier.db.models import ApiToken, Office, StaffUser
from courier.domain.deadlines import DEFAULT_COLLECT_DAYS
from courier.services import audit, hashing
from courier.services.booking import office_sender
from courier.services.errors import Kind, ServiceError, invalid
from schemas import FieldError

ROLES: tuple[str, ...] = ("admin", "intake", "dispatcher", "contract_manager")
TOKEN_PREFIX = "cpt_"  # "courier personal token": recognisable in a leaked paste
_PREFIX_LEN = len(TOKEN_PREFIX) + 8
_USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")
# last_used_at is a hint for audits of stale tokens, not a log: refresh it at most this often so
# a busy token does not turn every read into a write
_TOUCH_EVERY = timedelta(minutes=5)
# built once: every API request looks its token up (authenticate)
_TOKEN_LOOKUP = (
    select(
        ApiToken.id,
        ApiToken.office_id,
        ApiToken.role,
        ApiToken.staff_user_id,
        ApiToken.revoked_at,
        ApiToken.expires_at,
        ApiToken.created_at,
        ApiToken.last_used_at,
        StaffUser.active.label("user_active"),
    )
    .outerjoin(StaffUser, StaffUser.id == ApiToken.staff_user_id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)
MAX_TOKEN_LIFETIME = timedelta(days=3650)
DEFAULT_TOKEN_LIFETIME = timedelta(days=90)  # as security.token_lifetime_days' default


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise invalid([FieldError("$.role", f"role must be one of: {', '.join(ROLES)}")])


async def office_by_code(session: AsyncSession, code: str) -> Office:
    office = (await session.execute(select(Office).where(Office.code == code))).scalar_one_or_none()
    if office is None:
        raise ServiceError(Kind.NOT_FOUND, "unknown_office", f"no office with code {code}")
    return office


# --------------------------------------------------------------------------------------------
# Offices


def _office_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": spec["name"],
        "home_regency_codes": list(spec["home_regency_codes"]),
        "pickup_slots": list(spec.get("pickup_slots", [])),
        "collect_days": int(spec.get("collect_days", DEFAULT_COLLECT_DAYS)),
        "courier_code": spec.get("courier") or registry.default_code(),
        "courier_preference": list(spec.get("courier_preference", [])),
        "sender": dict(spec.get("sender", {})),
    }


# Where each courier field of the sender comes from in the office's configuration.
_SENDER_SOURCE = {
    "shipper_name": "sender.contact",
    "shipper_contact": "sender.contact",
    "shipper_phone": "sender.phone",
    "shipper_addr": "sender.street",
}


def office_problems(spec: Mapping[str, Any], *, sender_required: bool) -> list[FieldError]:
    """Everything wrong with an office mapping: its schema, then its sender block against the
    limits of the office's courier (J&T: a shipper name of at most 30 characters, …), so an
    office that every booking would fail is refused when it is configured. ``sender_required``:
    the block must be there (`office add`, `office sync`, `check-config`; an office without one
    cannot be booked with any courier)."""
    errors = schemas.check("common/office", dict(spec))
    if errors:
        return errors
    sender = spec.get("sender")
    if not sender:
        if sender_required:
            return [
                FieldError(
                    "$.sender",
                    "required: the office as the courier's sender (contact ≤ 30 characters, "
                    "phone, street, regency_code, district_code, postal_code)",
                )
            ]
        return []
    courier_code = str(spec.get("courier") or registry.default_code())
    found = registry.DESCRIPTORS.get(courier_code)
    if found is None or found.sender_problems is None:
        return []
    party = office_sender(str(spec["name"]), sender)
    out = []
    for field_name, problem in found.sender_problems(party):
        source = _SENDER_SOURCE.get(field_name, "sender")
        if field_name in ("shipper_name", "shipper_contact") and not sender.get("contact"):
            source = "name"  # no contact given: the office's name is sent instead
        message = f"{found.name('en')} {field_name}: {problem}"
        if source == "name":
            message += " (the office name is sent when sender.contact is empty: set a shorter one)"
        out.append(FieldError(f"$.{source}", message))
    # shipper_name and shipper_contact carry the same value: one error is enough
    first: dict[tuple[str, str], FieldError] = {}
    for e in out:
        first.setdefault((e.path, e.message.split(":", 1)[1]), e)
    return list(first.values())


async def upsert_office(
    session: AsyncSession,
    spec: Mapping[str, Any],
    *,
    now: datetime,
    actor: str,
    sender_required: bool = False,
) -> tuple[Office, str]:
    """Create or update an office from a ``schemas/common/office.json`` mapping, refused with
    every problem :func:`office_problems` finds.

    Returns the office and ``"created"``, ``"updated"`` or ``"unchanged"``; only a real change
    writes the audit log.
    """
    errors = office_problems(spec, sender_required=sender_required)
    if errors:
        raise invalid(errors, "invalid office")
    fields = _office_fields(spec)
    found = (
        await session.execute(select(Office).where(Office.code == spec["code"]))
    ).scalar_one_or_none()
    if found is None:
        office = Office(code=spec["code"], created_at=now, **fields)
        session.add(office)
        await session.flush()
        audit.record(
            session,
            at=now,
            actor=actor,
            action="office.created",
            entity="office",
            entity_id=office.id,
            office_id=office.id,
            after={k: v for k, v in fields.items() if k != "sender"},
        )
        return office, "created"
    before = {k: getattr(found, k) for k in fields if getattr(found, k) != fields[k]}
    if not before:
        return found, "unchanged"
    for key in before:
        setattr(found, key, fields[key])
    audit.record(
        session,
        at=now,
        actor=actor,
        action="office.updated",
        entity="office",
        entity_id=found.id,
        office_id=found.id,
        before={k: ("[changed]" if k == "sender" else v) for k, v in before.items()},
        after={k: ("[changed]" if k == "sender" else fields[k]) for k in before},
    )
    return found, "updated"


async def list_offices(session: AsyncSession) -> Sequence[Office]:
    return (await session.execute(select(Office).order_by(Office.code))).scalars().all()


# --------------------------------------------------------------------------------------------
# Staff users


async def add_user(
    session: AsyncSession,
    *,
    office_code: str,
    username: str,
    password: str,
    role: str,
    now: datetime,
    actor: str,
) -> StaffUser:
    _check_role(role)
    errors = []
    if not (2 <= len(username) <= 64) or not set(username) <= _USERNAME_CHARS:
        errors.append(FieldError("$.username", "2-64 characters: a-z, 0-9, dot, dash, underscore"))
    if len(password) < 10:
        errors.append(FieldError("$.password", "password must have at least 10 characters"))
    if errors:
        raise invalid(errors)
    office = await office_by_code(session, office_code)
    taken = (
        await session.execute(select(StaffUser.id).where(StaffUser.username == username))
    ).scalar_one_or_none()
    if taken is not None:
        raise ServiceError(Kind.CONFLICT, "username_taken", "that username is taken")
    user = StaffUser(
        office_id=office.id,
        username=username,
        password_hash=hashing.argon2_hash(password),
        role=role,
        active=True,
        created_at=now,
    )
    session.add(user)
    await session.flush()
    audit.record(
        session,
        at=now,
        actor=actor,
        action="staff_user.created",
        entity="staff_user",
        entity_id=user.id,
        office_id=office.id,
        after={"username": username, "role": role},
    )
    return user


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    username: str
    role: str
    office_code: str
    active: bool
    created_at: datetime


async def list_users(session: AsyncSession, office_code: str | None = None) -> list[UserRow]:
    query = select(StaffUser, Office.code).join(Office, Office.id == StaffUser.office_id)
    if office_code is not None:
        query = query.where(Office.code == office_code)
    rows = (await session.execute(query.order_by(Office.code, StaffUser.username))).all()
    return [UserRow(u.id, u.username, u.role, code, u.active, u.created_at) for u, code in rows]


async def set_user_active(
    session: AsyncSession, username: str, *, active: bool, now: datetime, actor: str
) -> StaffUser:
    """Disable (or enable again) a staff account. A disabled account's tokens are refused from
    the next request on; they come back if the account is enabled (revoke them to end them)."""
    user = await session.scalar(
        select(StaffUser).where(StaffUser.username == username).with_for_update()
    )
    if user is None:
        raise ServiceError(Kind.NOT_FOUND, "unknown_user", "no staff account with that username")
    if user.active != active:
        user.active = active
        audit.record(
            session,
            at=now,
            actor=actor,
            action="staff_user.enabled" if active else "staff_user.disabled",
            entity="staff_user",
            entity_id=user.id,
            office_id=user.office_id,
            before={"active": not active},
            after={"active": active},
        )
    return user


# --------------------------------------------------------------------------------------------
# API tokens


def token_expiry(token: ApiToken, default_lifetime: timedelta) -> datetime:
    """When ``token`` stops working: its own ``expires_at``, or (a token made before expiry
    existed) its creation plus the default lifetime."""
    return token.expires_at or token.created_at + default_lifetime


async def create_token(
    session: AsyncSession,
    *,
    office_code: str,
    role: str,
    name: str,
    now: datetime,
    actor: str,
    lifetime: timedelta = DEFAULT_TOKEN_LIFETIME,
    staff_user_id: int | None = None,
    username: str | None = None,
) -> tuple[ApiToken, str]:
    """A new token for ``office_code`` working for ``lifetime``; returns the row and the
    plaintext (shown once).

    A token that acts for a person (``username`` or ``staff_user_id``: a dispatcher approving
    handovers) is tied to that staff account of the same office and has that account's role;
    a token for a system (the office's intake software) is tied to no one."""
    _check_role(role)
    if not (1 <= len(name) <= 64):
        raise invalid([FieldError("$.name", "name must have 1-64 characters")])
    if not (timedelta(0) < lifetime <= MAX_TOKEN_LIFETIME):
        raise invalid(
            [FieldError("$.expires_in", "a token's lifetime must be more than 0 and at most 3650d")]
        )
    office = await office_by_code(session, office_code)
    if username is not None:
        user = await session.scalar(
            select(StaffUser).where(
                StaffUser.office_id == office.id,
                StaffUser.username == username,
                StaffUser.active.is_(True),
            )
        )
        if user is None:
            raise invalid(
                [FieldError("$.user", "no active staff account with that username at this office")]
            )
        if user.role != role:
            raise invalid(
                [
                    FieldError(
                        "$.role",
                        f"the account's role is {user.role}: a token "
                        "acting for a person has that person's role",
                    )
                ]
            )
        staff_user_id = user.id
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        office_id=office.id,
        staff_user_id=staff_user_id,
        name=name,
        role=role,
        token_hash=hashing.hash_token(plaintext),
        prefix=plaintext[:_PREFIX_LEN],
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(token)
    await session.flush()
    audit.record(
        session,
        at=now,
        actor=actor,
        action="api_token.created",
        entity="api_token",
        entity_id=token.id,
        office_id=office.id,
        after={
            "name": name,
            "role": role,
            "token_prefix": token.prefix,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return token, plaintext


async def find_active_token(
    session: AsyncSession, plaintext: str, *, now: datetime, default_lifetime: timedelta
) -> ApiToken | None:
    """The token, when it is known, not revoked, not expired at ``now`` and (when it acts for a
    person) its staff account is active; else None."""
    row = (
        await session.execute(
            select(ApiToken, StaffUser.active)
            .outerjoin(StaffUser, StaffUser.id == ApiToken.staff_user_id)
            .where(ApiToken.token_hash == hashing.hash_token(plaintext))
        )
    ).one_or_none()
    if row is None:
        return None
    token, user_active = row
    if token.revoked_at is not None or now >= token_expiry(token, default_lifetime):
        return None
    if token.staff_user_id is not None and not user_active:
        return None
    return token


async def revoke_token(
    session: AsyncSession, prefix: str, *, now: datetime, actor: str
) -> ApiToken:
    """Revoke the one token whose prefix starts with ``prefix`` (at least 6 characters)."""
    if len(prefix) < 6:
        raise invalid([FieldError("$.prefix", "give at least 6 characters of the token prefix")])
    found = (
        (await session.execute(select(ApiToken).where(ApiToken.prefix.startswith(prefix))))
        .scalars()
        .all()
    )
    if not found:
        raise ServiceError(Kind.NOT_FOUND, "unknown_token", "no token has that prefix")
    if len(found) > 1:
        raise ServiceError(
            Kind.CONFLICT, "ambiguous_prefix", "several tokens share that prefix: give more of it"
        )
    token = found[0]
    if token.revoked_at is None:
        token.revoked_at = now
        audit.record(
            session,
            at=now,
            actor=actor,
            action="api_token.revoked",
            entity="api_token",
            entity_id=token.id,
            office_id=token.office_id,
            before={"revoked": False},
            after={"revoked": True},
        )
    return token


@dataclass(frozen=True, slots=True)
class TokenRow:
    prefix: str
    name: str
    role: str
    office_code: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    expires_at: datetime


async def list_tokens(
    session: AsyncSession, office_code: str | None = None, *, default_lifetime: timedelta
) -> list[TokenRow]:
    query = select(ApiToken, Office.code).join(Office, Office.id == ApiToken.office_id)
    if office_code is not None:
        query = query.where(Office.code == office_code)
    rows = (await session.execute(query.order_by(Office.code, ApiToken.id))).all()
    return [
        TokenRow(
            t.prefix,
            t.name,
            t.role,
            code,
            t.created_at,
            t.revoked_at,
            t.last_used_at,
            token_expiry(t, default_lifetime),
        )
        for t, code in rows
    ]


# --------------------------------------------------------------------------------------------
# The caller behind a token (every staff use case acts for one)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a staff use case acts for. A caller only ever acts for its own office: every staff
    use case scopes its queries by ``office_id`` (invariant 5)."""

    office_id: int
    actor: str  # as written in the audit log: "token:<id>", or "staff:<id>" for a console session
    role: str
    token_id: int | None  # None: a console session (courier/services/signin.py)
    staff_user_id: int | None = None  # the person, for a console session
    username: str | None = None


async def authenticate(ctx: AppContext, plaintext: str) -> Caller | None:
    """The caller an API token stands for, or None for an unknown, revoked or expired token or
    one whose staff account is disabled (the answer does not say which). Refreshes the token's
    ``last_used_at`` when it is stale.

    Every API request runs this before its use case, so it is a single Core statement on a
    connection of its own (:func:`courier.db.engine.one_statement`: no BEGIN and COMMIT on
    PostgreSQL, no ORM session); the rare refresh is one more statement, atomic on its own."""
    now = ctx.clock.now()
    lifetime = timedelta(days=ctx.settings.token_lifetime_days)
    async with one_statement(ctx.engine) as conn:
        row = (
            await conn.execute(_TOKEN_LOOKUP, {"token_hash": hashing.hash_token(plaintext)})
        ).first()
        if row is None or row.revoked_at is not None:
            return None
        if now >= (row.expires_at or row.created_at + lifetime):
            return None
        if row.staff_user_id is not None and not row.user_active:
            return None
        if row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY:
            await conn.execute(
                update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now)
            )
        return Caller(
            office_id=row.office_id, actor=f"token:{row.id}", role=row.role, token_id=row.id
        )
