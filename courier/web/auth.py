"""Bearer API tokens for staff and the office's systems.

401 when there is no usable credential (missing, malformed, unknown, revoked or expired token,
or one acting for a disabled staff account: the answer does not say which; every request looks
the token up afresh, so a revocation counts from the next request); 403 when the token is valid
but its role may not do this. ``admin`` may do everything its office may. A caller only ever
acts for its own office: the staff use cases scope every query by ``caller.office_id``.
"""

from __future__ import annotations

import re

from aiohttp import web

from courier.services import staff
from courier.services.staff import ROLES, Caller
from courier.web.errors import forbidden, unauthorized
from courier.web.keys import context_of

__all__ = ["Caller", "require"]

# RFC 6750's token68 characters, bounded: anything else (raw bytes in the header, text that is
# not ASCII) is no token of ours and never reaches the database or a hash function
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{1,512}")


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise unauthorized("a Bearer API token is required")
    token = value.strip()
    if not _TOKEN.fullmatch(token):
        raise unauthorized("the API token is not valid")
    return token


async def require(request: web.Request, *roles: str) -> Caller:
    """The caller, when its token is valid and its role is ``admin`` or one of ``roles``."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    caller = await staff.authenticate(context_of(request), _bearer(request))
    if caller is None:
        raise unauthorized("the API token is not valid")
    if caller.role != "admin" and caller.role not in roles:
        raise forbidden(f"role {caller.role} may not do this")
    return caller
