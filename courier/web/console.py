"""The dispatch console: server-rendered pages for the office's staff (role ``dispatcher`` or
``admin``), Bahasa Indonesia first with an English switch, no script, no CDN.

``GET  /login`` ``POST /login`` ``POST /logout``   sign in and out (courier/web/staff_session.py)
``GET  /lang/{code}``                              remember the language (a cookie), go back
``GET  /``                                         the board
``GET  /deliveries`` ``/deliveries.csv``           find deliveries; the same as CSV
``GET  /deliveries/{id}``                          one delivery: its timeline, proof, handover
``GET  /deliveries/{id}/pod/{proof}/{index}``      a proof-of-delivery file from our store
``GET  /exceptions``                               the exceptions queue
``POST /exceptions/{id}/resolve``                  close an item with a note

Every page asks :func:`courier.web.auth.require` for the caller (the session, or a Bearer
token), calls one use case and renders it. Refusals are pages too (403, 404, 409, 422: never the
JSON error shape); a page without a session sends the browser to ``/login``. Every form that
changes something carries the session's CSRF field; a POST without it is refused (403) before any
use case runs.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import cache, wraps
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import jinja2
import structlog
from aiohttp import web

from core.clock import WIB
from courier.context import AppContext
from courier.domain.exception_kinds import NEXT_STEPS, STATE_TEXTS, ExceptionKind
from courier.domain.states import DeliveryState
from courier.services import board, exception_queue, find, signin, timeline
from courier.services.errors import Kind, ServiceError
from courier.services.staff import ROLES, Caller
from courier.web import console_api, staff_session
from courier.web.auth import require
from courier.web.dispatch import path_id
from courier.web.errors import ApiError
from courier.web.keys import context_of
from courier.web.staff_session import COOKIE, LANG_COOKIE, PRE_COOKIE

routes = web.RouteTableDef()
log = structlog.get_logger()

ROLE = "dispatcher"
EVERY_ROLE = tuple(r for r in ROLES if r != "admin")  # who may sign out: anyone signed in
LANGUAGES = ("id", "en")
PAGE_SIZE = 50
SECURITY_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
# the console's own paths (HTML, not the JSON API: kept out of the OpenAPI document)
PAGE_PATHS = frozenset({"/", "/login", "/logout", "/deliveries", "/deliveries.csv", "/exceptions"})
PAGE_PREFIXES = ("/deliveries/", "/exceptions/", "/lang/")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_console_path(path: str) -> bool:
    return path in PAGE_PATHS or path.startswith(PAGE_PREFIXES)


def language(request: web.Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE, "")
    return chosen if chosen in LANGUAGES else "id"


def _local(path: str | None, default: str = "/") -> str:
    """``path`` when it is a path of this site (never ``//host`` or a scheme): an open redirect
    would let a phishing link sign someone in, then send them elsewhere."""
    if path and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return default


# --------------------------------------------------------------------------------------------
# Rendering


def _wib(when: datetime | None, short: bool = False) -> str:
    if when is None:
        return "—"
    local = when.astimezone(WIB)
    return local.strftime("%d/%m %H.%M") if short else local.strftime("%d/%m/%Y %H.%M WIB")


@cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("courier.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["wib"] = _wib
    env.globals["state_texts"] = {s.value: t for s, t in STATE_TEXTS.items()}
    env.globals["kind_texts"] = {k.value: t for k, t in NEXT_STEPS.items()}
    env.globals["states"] = [s.value for s in DeliveryState]
    env.globals["kinds"] = [k.value for k in ExceptionKind]
    return env


def render(
    request: web.Request,
    template: str,
    *,
    status: int = 200,
    caller: Caller | None = None,
    **values: Any,
) -> web.Response:
    ctx = context_of(request)
    lang = language(request)

    def t(id_text: str, en_text: str) -> str:
        return en_text if lang == "en" else id_text

    found = request.get(staff_session.SESSION)
    csrf = ""
    if found is not None:
        csrf = staff_session.form_field(ctx, staff_session.session_binding(found))
    body = (
        _templates()
        .get_template(template)
        .render(
            lang=lang,
            t=t,
            caller=caller,
            csrf=csrf,
            here=request.path_qs,
            **values,
        )
    )
    response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    return response


_ERRORS = {
    401: ("Perlu masuk", "Sign-in needed"),
    403: ("Tidak diizinkan", "Not allowed"),
    404: ("Tidak ditemukan", "Not found"),
    409: ("Tidak dapat dilakukan sekarang", "Cannot be done now"),
    422: ("Isian tidak valid", "Invalid input"),
    429: ("Terlalu banyak percobaan", "Too many tries"),
}


def error_page(request: web.Request, status: int, message: str = "") -> web.Response:
    title = _ERRORS.get(status, ("Kesalahan", "Error"))
    return render(request, "console/error.html", status=status, title=title, message=message)


def page(handler: Handler) -> Handler:
    """Refusals of a console page as pages (never the API's JSON shape)."""

    @wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as err:
            return error_page(request, err.status, "")
        except ServiceError as err:
            status = ApiError.from_service(err).status
            return error_page(request, status, err.message)

    return wrapped


async def read_form(request: web.Request) -> dict[str, str]:
    try:
        form = await request.post()
    except (UnicodeDecodeError, LookupError, ValueError):
        return {}
    return {k: v for k, v in form.items() if isinstance(v, str)}


def csrf_refused(request: web.Request, form: dict[str, str]) -> bool:
    """True unless the form carries this session's CSRF field (a Bearer-authenticated request
    needs none); a request a browser marks cross-site is refused either way."""
    if request.headers.get("Sec-Fetch-Site", "") == "cross-site":
        return True
    found = request.get(staff_session.SESSION)
    if found is None:
        return "Authorization" not in request.headers
    ctx = context_of(request)
    return not staff_session.form_ok(ctx, staff_session.session_binding(found), form.get("csrf"))


# --------------------------------------------------------------------------------------------
# Sign-in


@routes.get("/login")
async def login_form(request: web.Request) -> web.Response:
    ctx = context_of(request)
    found = staff_session.from_request(ctx, request)
    if found is not None and await signin.session_caller(ctx, found.user_id, found.issued_at):
        raise web.HTTPSeeOther(_local(request.query.get("next")))
    return _login_page(request)


def _login_page(
    request: web.Request,
    *,
    status: int = 200,
    error: str = "",
    username: str = "",
    next_path: str | None = None,
) -> web.Response:
    ctx = context_of(request)
    pre = request.cookies.get(PRE_COOKIE, "")
    if not (16 <= len(pre) <= 64 and pre.isascii()):
        pre = secrets.token_urlsafe(24)
    response = render(
        request,
        "console/login.html",
        status=status,
        error=error,
        username=username,
        next=_local(next_path if next_path is not None else request.query.get("next")),
        login_csrf=staff_session.form_field(ctx, staff_session.pre_binding(pre)),
    )
    staff_session.set_cookie(ctx, response, PRE_COOKIE, pre)
    return response


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    ctx = context_of(request)
    form = await read_form(request)
    pre = request.cookies.get(PRE_COOKIE, "")
    cross_site = request.headers.get("Sec-Fetch-Site", "") == "cross-site"
    if (
        cross_site
        or not pre
        or not staff_session.form_ok(ctx, staff_session.pre_binding(pre), form.get("csrf"))
    ):
        log.info("console_csrf_refused", route="/login")
        return error_page(request, 403, "")
    username = form.get("username", "")[:64]
    try:
        done = await signin.sign_in(ctx, username, form.get("password", "")[:1024])
    except ServiceError as err:
        if err.kind is Kind.RATE_LIMITED:
            response = _login_page(
                request,
                status=429,
                error=err.message,
                username=username,
                next_path=form.get("next"),
            )
            response.headers["Retry-After"] = str(err.retry_after or 60)
            return response
        return _login_page(
            request,
            status=401,
            error=signin.WRONG,
            username=username,
            next_path=form.get("next"),
        )
    found = staff_session.new_session(ctx, done.user_id, done.issued_at)
    response = web.HTTPSeeOther(_local(form.get("next")), headers=SECURITY_HEADERS)
    staff_session.set_cookie(ctx, response, COOKIE, staff_session.encode(ctx, found))
    staff_session.clear_cookie(ctx, response, PRE_COOKIE)
    raise response


@routes.post("/logout")
@page
async def logout(request: web.Request) -> web.StreamResponse:
    ctx = context_of(request)
    caller = await require(request, *EVERY_ROLE)
    form = await read_form(request)
    if csrf_refused(request, form):
        return error_page(request, 403)
    await signin.sign_out(ctx, caller)
    response = web.HTTPSeeOther("/login", headers=SECURITY_HEADERS)
    request.pop(staff_session.REFRESH, None)
    staff_session.clear_cookie(ctx, response, COOKIE)
    raise response


@routes.get("/lang/{code}")
async def switch_language(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"]
    if code not in LANGUAGES:
        return error_page(request, 404)
    response = web.HTTPSeeOther(_local(request.query.get("next")), headers=SECURITY_HEADERS)
    ctx: AppContext = context_of(request)
    response.set_cookie(
        LANG_COOKIE,
        code,
        path="/",
        max_age=365 * 24 * 3600,
        httponly=True,
        samesite="Lax",
        secure=staff_session.secure(ctx),
    )
    raise response


# --------------------------------------------------------------------------------------------
# Pages


@routes.get("/")
@page
async def board_page(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    console_api.query_params(request, ())
    found = await board.board(context_of(request), caller)
    return render(request, "console/board.html", caller=caller, active="board", board=found)


@routes.get("/deliveries")
@page
async def deliveries_page(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    raw = {k: v for k, v in request.query.items() if v != ""}  # an empty form field: no filter
    try:
        params = console_api.parse_params(raw, console_api.FIND_PARAMS)
        errors: list[str] = []
    except ServiceError as err:
        params, errors = {}, [f"{e.path}: {e.message}" for e in err.details]
    found = await find.find(
        context_of(request),
        caller,
        console_api.filters_of(params),
        limit=params.get("limit", PAGE_SIZE),
        cursor=params.get("cursor"),
    )
    keep = {k: v for k, v in raw.items() if k not in ("cursor", "format")}
    next_url = (
        "/deliveries?" + urlencode({**keep, "cursor": found.next_cursor})
        if found.next_cursor
        else None
    )
    csv_url = "/deliveries.csv" + ("?" + urlencode(keep) if keep else "")
    return render(
        request,
        "console/deliveries.html",
        status=422 if errors else 200,
        caller=caller,
        active="deliveries",
        page=found,
        form=raw,
        errors=errors,
        next_url=next_url,
        csv_url=csv_url,
    )


@routes.get("/deliveries.csv")
@page
async def deliveries_csv(request: web.Request) -> web.StreamResponse:
    caller = await require(request, ROLE)
    raw = {k: v for k, v in request.query.items() if v != ""}
    allowed = tuple(p for p in console_api.FIND_PARAMS if p not in ("limit", "cursor", "format"))
    params = console_api.parse_params(raw, allowed)
    rows = find.export(context_of(request), caller, console_api.filters_of(params))
    return await console_api.csv_response(request, rows, "deliveries.csv")


@routes.get("/deliveries/{id}")
@page
async def delivery_page(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    delivery_id = path_id(request)
    found = await timeline.delivery_page(context_of(request), caller, delivery_id)
    return render(request, "console/delivery.html", caller=caller, active="deliveries", found=found)


@routes.get("/deliveries/{id}/pod/{proof}/{index}")
@page
async def pod_artefact(request: web.Request) -> web.StreamResponse:
    caller = await require(request, ROLE)
    delivery_id = path_id(request)
    numbers = console_api.parse_params({"id": request.match_info["proof"]})
    index_text = request.match_info["index"]
    if not index_text.isdigit() or len(index_text) > 3:
        return error_page(request, 404)
    found = await timeline.stored_artefact(
        context_of(request), caller, delivery_id, numbers["id"], int(index_text)
    )
    response = web.Response(
        body=found.data,
        headers={
            "Content-Type": found.content_type,
            "Cache-Control": "private, no-store",
            "Content-Disposition": "inline",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
    return response


@routes.get("/exceptions")
@page
async def exceptions_page(request: web.Request) -> web.Response:
    caller = await require(request, ROLE)
    raw = {k: v for k, v in request.query.items() if k != "m" and v != ""}  # m: the flash
    params = console_api.parse_params(raw, ("kind",))
    items = await exception_queue.queue(context_of(request), caller, kind=params.get("kind"))
    flash = request.query.get("m") == "resolved"
    return render(
        request,
        "console/exceptions.html",
        caller=caller,
        active="exceptions",
        items=items,
        kind=params.get("kind"),
        flash=flash,
    )


@routes.post("/exceptions/{id}/resolve")
@page
async def resolve_item(request: web.Request) -> web.StreamResponse:
    caller = await require(request, ROLE)
    item_id: int = console_api.parse_params({"id": request.match_info["id"]})["id"]
    form = await read_form(request)
    if csrf_refused(request, form):
        log.info("console_csrf_refused", route="/exceptions/{id}/resolve")
        return error_page(request, 403)
    note = " ".join(form.get("note", "").split())
    if not 3 <= len(note) <= 500:
        return error_page(
            request,
            422,
            "Tulis alasan 3–500 karakter. / Write why in 3–500 characters.",
        )
    await exception_queue.resolve(context_of(request), caller, item_id, note=note)
    back = _local(form.get("next"), "/exceptions")
    if back == "/exceptions":
        back += "?m=resolved"
    raise web.HTTPSeeOther(back, headers=SECURITY_HEADERS)


@cache
def _stylesheet() -> bytes:
    return resources.files("courier.web").joinpath("static", "console.css").read_bytes()


@routes.get("/static/console.css")
async def stylesheet(request: web.Request) -> web.Response:
    response = web.Response(body=_stylesheet(), content_type="text/css", charset="utf-8")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


def setup(app: web.Application) -> None:
    app.on_response_prepare.append(staff_session.refresh_on_answer)
