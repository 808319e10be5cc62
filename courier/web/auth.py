"""Who is calling: a Bearer API token (staff and the office's systems) or, on the console's
pages, a signed-in staff session (courier/web/staff_session.py). One :func:`require` for both,
so every page and every API route checks the role and scopes by the caller's office alike.

A page request without a usable session is sent to ``/login`` (303) instead of a 401; a page
request that carries an ``Authorization`` header is checked as a token (scripts and tests may
read pages with one). The API never reads the session cookie: a cookie a browser sends on its
own is no credential for it.

401 when there is no usable credential (missing, malformed, unknown, revoked or expired token,
or one acting for a disabled staff account: the answer does not say which; every request looks
the token up afresh, so a revocation counts from the next request); 403 when the token is valid
but its role may not do this. ``admin`` may do everything its office may. A caller only ever
acts for its own office: the staff use cases scope every query by ``caller.office_id``.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from aiohttp import web

from courier.services import signin, staff
from courier.services.staff import ROLES, Caller
from courier.web import staff_session
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
    ctx = context_of(request)
    if request.path.startswith("/api/") or "Authorization" in request.headers:
        caller = await staff.authenticate(ctx, _bearer(request))
        if caller is None:
            raise unauthorized("the API token is not valid")
    else:
        found = staff_session.from_request(ctx, request)
        caller = (
            None
            if found is None
            else await signin.session_caller(ctx, found.user_id, found.issued_at)
        )
        if caller is None:
            raise web.HTTPSeeOther(sign_in_url(request.path_qs))
    if caller.role != "admin" and caller.role not in roles:
        raise forbidden(f"role {caller.role} may not do this")
    return caller


def sign_in_url(next_path: str) -> str:
    return "/login?next=" + quote(next_path, safe="/")
