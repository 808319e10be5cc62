"""The console's session cookie and its CSRF fields.

The cookie (``courier_console``) is a Fernet token (AES-128-CBC then HMAC-SHA256, from the
``cryptography`` package) of ``{"uid", "iat", "seen", "sid"}``: the staff user, when the session
was issued, when it was last used, and a random session id the CSRF fields are bound to. It is
HttpOnly, SameSite=Strict, Path=/, Secure when the service is reached over HTTPS
(``console.secure_cookie``). The key is derived from the server's secret (the passport pepper,
under its own purpose), so every ``serve`` process reads every other's cookies and a restart
signs nobody out; nothing is stored per session on the server.

A cookie counts only while: it decrypts under the key (not forged, not altered), it is younger
than ``console.absolute_hours`` since ``iat``, it was used within ``console.idle_minutes``
(``seen``; refreshed on a request at most once a minute), and
:func:`courier.services.signin.session_caller` finds its account active and not signed out since
``iat``. All times are the service clock's (``ctx.clock``), so tests drive expiry.

CSRF: every console form carries :func:`form_field` — the tracking page's HMAC field
(:func:`courier.web.pages.csrf_field`) under a console key, bound to the session id; the login
form, before any session, to a random pre-session cookie (``courier_console_pre``,
SameSite=Strict). A request authenticated by a Bearer token needs no field (a browser never adds
that header on its own).
"""

from __future__ import annotations

import json
import secrets
from base64 import urlsafe_b64encode
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any

from aiohttp import web
from cryptography.fernet import Fernet, InvalidToken

from courier.context import AppContext
from courier.services import hashing
from courier.web import pages
from courier.web.keys import CONTEXT

COOKIE = "courier_console"
PRE_COOKIE = "courier_console_pre"
LANG_COOKIE = "courier_console_lang"
SESSION_PURPOSE = "console-session-cookie"
CSRF_PURPOSE = "console-csrf"
REFRESH_EVERY = timedelta(minutes=1)  # the idle clock is re-set at most this often
_MAX_COOKIE = 1024


@dataclass(frozen=True, slots=True)
class StaffSession:
    user_id: int
    issued_at: datetime
    seen_at: datetime
    sid: str


SESSION: web.RequestKey[StaffSession] = web.RequestKey("courier_console_session", StaffSession)
REFRESH: web.RequestKey[str] = web.RequestKey("courier_console_refresh", str)


def _fernet(ctx: AppContext) -> Fernet:
    key = hashing.derive_key(ctx.settings.passport_pepper, SESSION_PURPOSE)
    return Fernet(urlsafe_b64encode(key))


def encode(ctx: AppContext, found: StaffSession) -> str:
    payload = {
        "uid": found.user_id,
        "iat": found.issued_at.isoformat(),
        "seen": found.seen_at.isoformat(),
        "sid": found.sid,
    }
    return _fernet(ctx).encrypt(json.dumps(payload).encode()).decode("ascii")


def new_session(ctx: AppContext, user_id: int, issued_at: datetime) -> StaffSession:
    return StaffSession(user_id, issued_at, ctx.clock.now(), secrets.token_urlsafe(16))


def decode(ctx: AppContext, value: str) -> StaffSession | None:
    """The session in ``value`` when it is ours and has not expired at the service clock's now."""
    if not value or len(value) > _MAX_COOKIE or not value.isascii():
        return None
    try:
        data: Any = json.loads(_fernet(ctx).decrypt(value.encode("ascii")))
        found = StaffSession(
            int(data["uid"]),
            datetime.fromisoformat(data["iat"]).astimezone(UTC),
            datetime.fromisoformat(data["seen"]).astimezone(UTC),
            str(data["sid"]),
        )
    except (InvalidToken, ValueError, KeyError, TypeError):
        return None
    now = ctx.clock.now()
    settings = ctx.settings
    if now - found.issued_at >= timedelta(hours=settings.console_absolute_hours):
        return None
    if now - found.seen_at >= timedelta(minutes=settings.console_idle_minutes):
        return None
    return found


def secure(ctx: AppContext) -> bool:
    if ctx.settings.console_secure_cookie is not None:
        return ctx.settings.console_secure_cookie
    return ctx.settings.public_url.startswith("https://")


def set_cookie(ctx: AppContext, response: web.StreamResponse, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=secure(ctx),
    )


def clear_cookie(ctx: AppContext, response: web.StreamResponse, name: str) -> None:
    response.del_cookie(name, path="/", secure=secure(ctx), httponly=True, samesite="Strict")


def from_request(ctx: AppContext, request: web.Request) -> StaffSession | None:
    """The request's session cookie, decoded and not expired; remembers a refreshed cookie for
    the answer (:func:`refresh_on_answer`) when the idle clock needs re-setting."""
    found = decode(ctx, request.cookies.get(COOKIE, ""))
    if found is None:
        return None
    now = ctx.clock.now()
    if now - found.seen_at >= REFRESH_EVERY:
        found = StaffSession(found.user_id, found.issued_at, now, found.sid)
        request[REFRESH] = encode(ctx, found)
    request[SESSION] = found
    return found


async def refresh_on_answer(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: send the refreshed cookie, unless the handler ended the session."""
    value = request.get(REFRESH)
    if value and COOKIE not in response.cookies:
        # the Set-Cookie headers are built before this signal: add the header itself
        jar: SimpleCookie = SimpleCookie()
        jar[COOKIE] = value
        morsel = jar[COOKIE]
        morsel["path"] = "/"
        morsel["httponly"] = True
        morsel["samesite"] = "Strict"
        morsel["secure"] = secure(request.app[CONTEXT])
        response.headers.add("Set-Cookie", morsel.OutputString())


# --------------------------------------------------------------------------------------------
# CSRF


def _csrf_key(ctx: AppContext) -> bytes:
    return hashing.derive_key(ctx.settings.passport_pepper, CSRF_PURPOSE)


def form_field(ctx: AppContext, binding: str) -> str:
    """A fresh CSRF value bound to ``binding`` (``sid:<session id>`` or ``pre:<cookie>``)."""
    return pages.csrf_field(_csrf_key(ctx), binding)


def form_ok(ctx: AppContext, binding: str, value: object) -> bool:
    return isinstance(value, str) and pages.csrf_ok(_csrf_key(ctx), binding, value)


def session_binding(found: StaffSession) -> str:
    return f"sid:{found.sid}"


def pre_binding(value: str) -> str:
    return f"pre:{value}"
