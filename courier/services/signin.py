"""Staff sign-in to the dispatch console: the password check, the lockout, and the person behind
a session on every request.

A password is checked against the argon2id hash ``courier staff add`` stored. Each try is
counted BEFORE the check in the shared database counters (:mod:`courier.services.ratelimit`,
scope ``console-login``, keyed by the username: every ``serve`` process sees the same count) and
given back when it succeeds, so the counter counts failures: past ``console.max_failures`` in
``console.lockout_minutes`` the username is locked for the rest of the window, right password or
not. An unknown username costs the same argon2 run as a known one and gets the same answer.

The session itself lives in the browser (an encrypted cookie, courier/web/staff_session.py); what
is server-side is the check on every request (:func:`session_caller`): the account exists, is
active, and the session was issued after the account's ``sessions_after`` (set by sign-out, so
a copy of a signed-out cookie is dead everywhere). A disabled account loses access at its next
request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import Office, StaffUser
from courier.services import audit, hashing, ratelimit
from courier.services.errors import Kind, ServiceError
from courier.services.staff import Caller

SCOPE = "console-login"


# An argon2id hash of a random string nobody knows: an unknown username is checked against it,
# so "no such user" takes as long as "wrong password" (no username discovery by timing).
_NOBODY: list[str] = []


async def _nobody() -> str:
    """An argon2id hash of a random secret, made once per process off the event loop."""
    if not _NOBODY:
        _NOBODY.append(await hashing.argon2_hash_async(secrets.token_hex(16)))
    return _NOBODY[0]


WRONG = "Nama pengguna atau kata sandi salah. / Wrong username or password."


@dataclass(frozen=True, slots=True)
class SignedIn:
    user_id: int
    username: str
    issued_at: datetime  # the session's start: idle and absolute expiry count from here


def _username(value: str) -> str:
    return value.strip().lower()[:64]


def _window(ctx: AppContext) -> timedelta:
    return timedelta(minutes=ctx.settings.console_lockout_minutes)


async def sign_in(ctx: AppContext, username: str, password: str) -> SignedIn:
    """The staff user whose username and password these are; :class:`ServiceError`
    ``identity``/``wrong_password`` (the same answer for an unknown user, a disabled one and a
    wrong password) or ``rate_limited``/``locked`` with ``retry_after``."""
    now = ctx.clock.now()
    name = _username(username)
    key = ratelimit.key_hash(ratelimit.counter_key(ctx.settings.passport_pepper), name)
    window = _window(ctx)
    async with transaction(ctx.sessions) as session:  # counted and committed before the check
        wait = await ratelimit.take(
            session, SCOPE, key, now=now, limit=ctx.settings.console_max_failures, window=window
        )
    async with ctx.sessions() as session:
        user = await session.scalar(select(StaffUser).where(StaffUser.username == name))
    stored = user.password_hash if user is not None else await _nobody()
    good = await hashing.argon2_verify_async(stored, password) and user is not None
    if wait is not None:
        async with transaction(ctx.sessions) as session:
            if user is not None:
                audit.record(
                    session,
                    at=now,
                    actor="console",
                    action="staff_user.sign_in_locked",
                    entity="staff_user",
                    entity_id=user.id,
                    office_id=user.office_id,
                )
        raise ServiceError(
            Kind.RATE_LIMITED,
            "locked",
            "Terlalu banyak percobaan yang salah: coba lagi nanti. / "
            "Too many wrong tries: try again later.",
            retry_after=wait,
        )
    if user is None or not good or not user.active:
        if user is not None:
            async with transaction(ctx.sessions) as session:  # kept: the refusal follows it
                audit.record(
                    session,
                    at=now,
                    actor="console",
                    action="staff_user.sign_in_failed",
                    entity="staff_user",
                    entity_id=user.id,
                    office_id=user.office_id,
                )
        raise ServiceError(Kind.IDENTITY, "wrong_password", WRONG)
    async with transaction(ctx.sessions) as session:
        await ratelimit.refund(session, SCOPE, key, now=now, window=window)
        row = await session.get_one(StaffUser, user.id)
        # a session starts after the last sign-out, even on a clock that has not moved since
        issued = now
        if row.sessions_after is not None and issued <= row.sessions_after:
            issued = row.sessions_after + timedelta(microseconds=1)
        audit.record(
            session,
            at=now,
            actor=f"staff:{user.id}",
            action="staff_user.signed_in",
            entity="staff_user",
            entity_id=user.id,
            office_id=user.office_id,
        )
        return SignedIn(user.id, user.username, issued)


async def session_caller(ctx: AppContext, user_id: int, issued_at: datetime) -> Caller | None:
    """Who a console session acts for, or None when its account is gone, disabled, or signed
    out after ``issued_at`` (the answer does not say which)."""
    async with ctx.sessions() as session:
        user = await session.scalar(
            select(StaffUser)
            .join(Office, Office.id == StaffUser.office_id)
            .where(StaffUser.id == user_id, StaffUser.active.is_(True))
        )
    if user is None:
        return None
    if user.sessions_after is not None and issued_at <= user.sessions_after:
        return None
    return Caller(
        office_id=user.office_id,
        actor=f"staff:{user.id}",
        role=user.role,
        token_id=None,
        staff_user_id=user.id,
        username=user.username,
    )


async def sign_out(ctx: AppContext, caller: Caller) -> None:
    """End every session of the caller's account issued until now (a copied cookie too)."""
    if caller.staff_user_id is None:
        return  # an API token has no session to end
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        user = await session.get(StaffUser, caller.staff_user_id, with_for_update=True)
        if user is None:
            return
        user.sessions_after = now if user.sessions_after is None else max(now, user.sessions_after)
        audit.record(
            session,
            at=now,
            actor=caller.actor,
            action="staff_user.signed_out",
            entity="staff_user",
            entity_id=user.id,
            office_id=user.office_id,
        )
