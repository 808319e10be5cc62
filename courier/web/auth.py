"""Bearer API tokens for staff and the office's systems.

401 when there is no usable credential (missing, malformed, unknown or revoked token: the
answer does not say which); 403 when the token is valid but its role may not do this.
``admin`` may do everything its office may. A principal only ever acts for its own office: handlers
scope every query by ``principal.office_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web

from courier.db.engine import transaction
from courier.services.staff import ROLES, find_active_token
from courier.web.errors import forbidden, unauthorized
from courier.web.keys import context_of

# last_used_at is a hint for audits of stale tokens, not a log: refresh it at most this often so
# a busy token does not turn every read into a write
_TOUCH_EVERY = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Principal:
    office_id: int
    actor: str  # as written in the audit log: "token:<id>"
    role: str
    token_id: int


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise unauthorized("a Bearer API token is required")
    return value.strip()


async def require(request: web.Request, *roles: str) -> Principal:
    """The caller, when its token is valid and its role is ``admin`` or one of ``roles``."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    plaintext = _bearer(request)
    ctx = context_of(request)
    now = ctx.clock.now()
    async with ctx.sessions() as session:
        token = await find_active_token(session, plaintext)
    if token is None:
        raise unauthorized("the API token is not valid")
    if token.role != "admin" and token.role not in roles:
        raise forbidden(f"role {token.role} may not do this")
    if token.last_used_at is None or now - token.last_used_at > _TOUCH_EVERY:
        async with transaction(ctx.sessions) as session:
            fresh = await session.get(type(token), token.id)
            if fresh is not None:
                fresh.last_used_at = now
    return Principal(
        office_id=token.office_id, actor=f"token:{token.id}", role=token.role, token_id=token.id
    )
