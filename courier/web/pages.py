"""The applicant's tracking page: ``GET /t/{token}``, the link the opt-in hands out.

The same data as the JSON view (:func:`courier.web.tracking.view`) and the same confirmation
(:func:`courier.services.applicant.confirm_receipt`), as plain HTML
that works with no JavaScript at all: Bahasa Indonesia first and English under it, times in WIB
("Senin, 30 November 2026 14.05 WIB"), the passport's journey, what happens next, the collect-by
deadline and, once the courier has delivered, a form to confirm receipt with the passport number.

Privacy: the tracking token is the credential and a link can be forwarded, so the page shows no
name, phone, address, date of birth or receiver; an unknown token gets one 404 page whatever it
looks like. Every page answer carries ``Cache-Control: no-store``, ``Referrer-Policy:
no-referrer`` (the token is in the URL), ``X-Content-Type-Options: nosniff`` and a strict
Content-Security-Policy (own stylesheet only, no script at all, forms post only to this origin,
no framing).

CSRF: the form carries ``csrf = nonce.HMAC(key, token_hash, nonce)`` with a fresh random nonce per
render; the POST is refused (403, nothing read from or written to the database) unless the HMAC
checks out for *this* token. The key is derived from the server's passport pepper
(:func:`hashing.derive_key`, its own purpose), so every ``courier serve`` process behind a load
balancer accepts the others' forms and no state is kept between render and POST; no cookie is
needed. We chose this over a SameSite cookie double-submit because the page must work for an
applicant whose browser refuses cookies, and a cookie would be one more thing tied to the token.
A request a browser marks ``Sec-Fetch-Site: cross-site`` is refused too. The field has no expiry:
the token in the URL is already a long-lived credential (a forger who holds it needs no victim's
browser), and the demo runs on an accelerated clock where any clock-time expiry would be seconds.
What this protects against is another site making the applicant's browser post to the page.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import date, datetime
from functools import cache
from hashlib import sha256
from importlib import resources
from typing import Any

import jinja2
import structlog
from aiohttp import web
from babel.dates import format_date

import schemas
from core.clock import WIB
from courier.context import AppContext
from courier.services import applicant, feedback, handover, hashing, notices
from courier.services.errors import Kind, ServiceError
from courier.web import tracking
from courier.web.keys import context_of
from courier.web.optin import client_address

routes = web.RouteTableDef()
log = structlog.get_logger()

Text = dict[str, str]

# Paths that are HTML for people, not the JSON API (kept out of the OpenAPI document).
PAGE_PREFIXES = ("/t/", "/n/", "/opt-in")

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
}
CSRF_PURPOSE = "tracking-page-csrf"

DAYS = {
    "id": ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
MONTHS = {
    "id": (
        "Januari",
        "Februari",
        "Maret",
        "April",
        "Mei",
        "Juni",
        "Juli",
        "Agustus",
        "September",
        "Oktober",
        "November",
        "Desember",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}

FLASHES: dict[str, Text] = {
    "confirmed": {
        "id": "Terima kasih, penerimaan paspor Anda sudah tercatat.",
        "en": "Thank you: your receipt of the passport is recorded.",
    },
    "reported": {
        "id": "Laporan Anda sudah kami terima. Petugas akan menghubungi Anda.",
        "en": "We have your report. The office will contact you.",
    },
    "rated": {
        "id": "Terima kasih atas penilaian Anda.",
        "en": "Thank you for your rating.",
    },
}
# a flash only says what the page can show to be true
_FLASH_HOLDS = {
    "confirmed": lambda found: found.handover is not None and found.handover.verified,
    "reported": lambda found: found.reported,
    "rated": lambda found: found.rating is not None,
}
# while these hold, the collect-by date still matters to the applicant
_DEADLINE_MATTERS = frozenset(
    {"requested", "queued", "shipping", "delivered", "returned", "needs_attention"}
)
AT_RISK_DAYS = 10
PREPARE_STATES = frozenset({"queued", "shipping"})
BAD_FORMAT: Text = {
    "id": "Tulis nomor paspor seperti yang tercetak: satu atau dua huruf lalu tujuh angka, "
    "misalnya X1234567. Percobaan ini tidak dihitung.",
    "en": "Type the passport number as printed: one or two letters then seven digits, "
    "e.g. X1234567. This try was not counted.",
}


def wib_text(when: datetime) -> Text:
    """How a person reads ``when`` in WIB, in both languages:
    ``{"id": "Senin, 30 November 2026 14.05 WIB", "en": "Monday, 30 November 2026 14:05 WIB"}``.
    (Indonesian writes the time with a dot; babel is not needed for twelve names.)"""
    local = when.astimezone(WIB)
    out = {}
    for lang, sep in (("id", "."), ("en", ":")):
        day = DAYS[lang][local.weekday()]
        month = MONTHS[lang][local.month - 1]
        out[lang] = (
            f"{day}, {local.day} {month} {local.year} {local.hour:02d}{sep}{local.minute:02d} WIB"
        )
    return out


def both(message: str) -> Text:
    """A service's ``"Indonesian / English"`` message split into its two languages."""
    id_text, sep, en_text = message.partition(" / ")
    return {"id": id_text, "en": en_text} if sep else {"id": message, "en": message}


# --------------------------------------------------------------------------------------------
# CSRF (see the module docstring)


def _csrf_key(ctx: AppContext) -> bytes:
    return hashing.derive_key(ctx.settings.passport_pepper, CSRF_PURPOSE)


def _csrf_mac(key: bytes, token: str, nonce: str) -> str:
    message = f"confirm\x00{hashing.hash_token(token)}\x00{nonce}".encode()
    return hmac.new(key, message, sha256).hexdigest()


def csrf_field(key: bytes, token: str) -> str:
    """A fresh form field for ``token``: ``nonce.mac``."""
    nonce = secrets.token_urlsafe(16)
    return f"{nonce}.{_csrf_mac(key, token, nonce)}"


def csrf_ok(key: bytes, token: str, field: str) -> bool:
    nonce, sep, mac = field.partition(".")
    if not sep or not nonce or len(field) > 200 or not field.isascii():
        return False  # compare_digest raises on non-ASCII text: refuse it first
    return hmac.compare_digest(mac, _csrf_mac(key, token, nonce))


# --------------------------------------------------------------------------------------------
# Rendering


@cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("courier.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _with_wib_texts(when: dict[str, str] | None) -> Text | None:
    return None if when is None else wib_text(datetime.fromisoformat(when["iso"]))


def day_text(day: date) -> Text:
    """``{"id": "Kamis, 3 Desember 2026", "en": "Thursday, 3 December 2026"}`` (babel)."""
    return {lang: format_date(day, "EEEE, d MMMM y", locale=lang) for lang in ("id", "en")}


def _deadline(found: applicant.TrackView, now: datetime) -> tuple[bool, int | None]:
    """Whether the collect-by date is shown, and the days left when it is at risk."""
    verified = found.handover is not None and found.handover.verified
    if found.collect_by is None or verified or found.state not in _DEADLINE_MATTERS:
        return False, None
    left = (found.collect_by.astimezone(WIB).date() - now.astimezone(WIB).date()).days
    return True, (max(0, left) if left <= AT_RISK_DAYS else None)


def _whatsapp_link(number: str) -> str:
    digits = "".join(c for c in number if c.isdigit())
    if digits.startswith("0"):
        digits = "62" + digits[1:]
    return f"https://wa.me/{digits}"


def _page_context(found: applicant.TrackView, now: datetime) -> dict[str, Any]:
    view = tracking.view(found)
    show_deadline, days_left = _deadline(found, now)
    contact = {k: found.contact.get(k, "") for k in ("phone", "whatsapp", "hours", "address")}
    contact["phone"] = contact["phone"] or found.office_phone or ""
    record = view["handover"]
    events = [{**event, "when": _with_wib_texts(event["at"])} for event in reversed(view["events"])]
    return {
        "view": view,
        "collect_by": _with_wib_texts(view["collect_by"]),
        "events": events,
        "can_confirm": record is not None and record["can_confirm"],
        "locked": record is not None
        and record["state"] == handover.AWAITING
        and not record["can_confirm"],
        "verified_at": None if record is None else _with_wib_texts(record["verified_at"]),
        "attempts_left": found.attempts_left,
        "office_name": found.office_name,
        "office_phone": found.office_phone,
        "show_deadline": show_deadline,
        "days_left": days_left,
        "expected": None if found.expected_on is None else day_text(found.expected_on),
        "courier_url": found.public_tracking_url,
        "seal_tail": found.seal_tail,
        "prepare": found.state in PREPARE_STATES,
        "contact": contact,
        "whatsapp_url": _whatsapp_link(contact["whatsapp"]) if contact.get("whatsapp") else None,
        "can_report": found.can_report,
        "reported": found.reported,
        "can_rate": found.can_rate,
        "rating": found.rating,
        "problems": [(p.value, feedback.PROBLEM_TEXT[p]) for p in feedback.Problem],
        "scores": sorted(feedback.SCORE_TEXT.items(), reverse=True),
    }


def _html(template: str, status: int = 200, **values: Any) -> web.Response:
    body = _templates().get_template(template).render(**values)
    response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    return response


def html_page(template: str, status: int = 200, **values: Any) -> web.Response:
    """A page of ours with the security headers (for the other page modules)."""
    return _html(template, status, **values)


def not_found_page() -> web.Response:
    """The one answer for a token that opens nothing (never says whether it ever did)."""
    return _html("not_found.html", status=404)


async def _render_track(
    request: web.Request,
    *,
    status: int = 200,
    flash_key: str | None = None,
    error: Text | None = None,
    error_form: str = "confirm",
) -> web.Response:
    ctx = context_of(request)
    token = request.match_info["token"]
    try:
        found = await applicant.track(
            ctx, token, client_address(request, ctx.settings.trusted_proxies)
        )
    except ServiceError as err:
        response = _html("busy.html", status=429)
        response.headers["Retry-After"] = str(err.retry_after or 60)
        return response
    if found is None:
        return not_found_page()
    holds = _FLASH_HOLDS.get(flash_key or "")
    flash = FLASHES[flash_key] if flash_key in FLASHES and holds and holds(found) else None
    # (a hand-typed ?m=confirmed claims nothing that has not happened)
    return _html(
        "track.html",
        status=status,
        flash=flash,
        error=error,
        error_form=error_form,
        csrf=csrf_field(_csrf_key(ctx), token),
        action=f"/t/{token}/confirm",
        report_action=f"/t/{token}/report",
        rate_action=f"/t/{token}/rate",
        **_page_context(found, ctx.clock.now()),
    )


# --------------------------------------------------------------------------------------------
# Routes


@routes.get("/t/{token}")
async def track_page(request: web.Request) -> web.Response:
    return await _render_track(request, flash_key=request.query.get("m", ""))


@routes.post("/t/{token}/confirm")
async def confirm_page(request: web.Request) -> web.StreamResponse:
    ctx = context_of(request)
    token = request.match_info["token"]
    try:
        form = await request.post()
    except (UnicodeDecodeError, LookupError, ValueError):
        # not a form a browser of ours sent (bytes that are not text, an unknown charset)
        log.info("tracking_page_form_unreadable")
        return _html("forbidden.html", status=403, back=f"/t/{token}")
    field, passport_no = form.get("csrf"), form.get("passport_no")
    cross_site = request.headers.get("Sec-Fetch-Site", "") == "cross-site"
    if cross_site or not isinstance(field, str) or not csrf_ok(_csrf_key(ctx), token, field):
        # before any database read: the answer is the same for every token
        log.info("tracking_page_csrf_refused")
        return _html("forbidden.html", status=403, back=f"/t/{token}")
    if not isinstance(passport_no, str) or schemas.check(
        "api/track_confirm", {"passport_no": passport_no}
    ):
        return await _render_track(request, status=422, error=BAD_FORMAT)
    try:
        result = await applicant.confirm_receipt(ctx, token, passport_no)
    except ServiceError as err:
        if err.code == "unknown_tracking":
            return not_found_page()
        # nothing awaits confirmation, or the handover changed meanwhile: show where it stands
        return await _render_track(request, status=409, error=both(err.message))
    refusal = handover.confirmation_error(result.outcome)
    if refusal is not None:
        status = 429 if result.outcome is handover.Confirmed.LOCKED else 422
        return await _render_track(request, status=status, error=both(refusal.message))
    # post/redirect/get: a reload does not post the number again
    raise web.HTTPSeeOther(f"/t/{token}?m=confirmed", headers=SECURITY_HEADERS)


async def _checked_form(request: web.Request) -> tuple[Any, web.Response | None]:
    """The posted form when its CSRF field checks out for this token (before any database
    read: the answer is the same for every token), else the 403 page to answer with."""
    ctx = context_of(request)
    token = request.match_info["token"]
    refused = _html("forbidden.html", status=403, back=f"/t/{token}")
    try:
        form = await request.post()
    except (UnicodeDecodeError, LookupError, ValueError):
        return None, refused
    field = form.get("csrf")
    cross_site = request.headers.get("Sec-Fetch-Site", "") == "cross-site"
    if cross_site or not isinstance(field, str) or not csrf_ok(_csrf_key(ctx), token, field):
        log.info("tracking_page_csrf_refused")
        return None, refused
    return form, None


def _text_field(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


@routes.post("/t/{token}/report")
async def report_page(request: web.Request) -> web.StreamResponse:
    form, refused = await _checked_form(request)
    if refused is not None:
        return refused
    token = request.match_info["token"]
    try:
        await feedback.report_problem(
            context_of(request), token, _text_field(form, "problem"), _text_field(form, "words")
        )
    except ServiceError as err:
        if err.code == "unknown_tracking":
            return not_found_page()
        status = 409 if err.kind is Kind.CONFLICT else 422
        return await _render_track(
            request, status=status, error=_field_error(err), error_form="report"
        )
    raise web.HTTPSeeOther(f"/t/{token}?m=reported", headers=SECURITY_HEADERS)


@routes.post("/t/{token}/rate")
async def rate_page(request: web.Request) -> web.StreamResponse:
    form, refused = await _checked_form(request)
    if refused is not None:
        return refused
    token = request.match_info["token"]
    score = _text_field(form, "score")
    try:
        await feedback.rate(
            context_of(request),
            token,
            int(score) if score.isdigit() and len(score) == 1 else 0,
            _text_field(form, "comment"),
        )
    except ServiceError as err:
        if err.code == "unknown_tracking":
            return not_found_page()
        status = 409 if err.kind is Kind.CONFLICT else 422
        return await _render_track(
            request, status=status, error=_field_error(err), error_form="rate"
        )
    raise web.HTTPSeeOther(f"/t/{token}?m=rated", headers=SECURITY_HEADERS)


def _field_error(err: ServiceError) -> Text:
    if err.kind is Kind.CONFLICT:
        return both(err.message)
    return {
        "id": "Periksa isian formulir: pilih salah satu pilihan, dan tulis paling banyak 500 "
        "karakter tanpa karakter kontrol.",
        "en": "Check the form: pick one of the choices, and write at most 500 characters "
        "without control characters.",
    }


@routes.get("/n/stop/{stop}")
async def optout_page(request: web.Request) -> web.Response:
    """The opt-out link of every e-mail: a form, so a mail scanner that follows links does not
    opt anyone out; an unknown link gets the one 404 page."""
    ctx = context_of(request)
    token = request.match_info["stop"]
    if notices.optout_delivery(ctx.settings, token) is None:
        return not_found_page()
    return _html(
        "optout.html",
        done=False,
        csrf=csrf_field(_csrf_key(ctx), token),
        action=f"/n/stop/{token}",
    )


@routes.post("/n/stop/{stop}")
async def optout_post(request: web.Request) -> web.Response:
    ctx = context_of(request)
    token = request.match_info["stop"]
    try:
        form = await request.post()
    except (UnicodeDecodeError, LookupError, ValueError):
        return _html("forbidden.html", status=403, back=f"/n/stop/{token}")
    field = form.get("csrf")
    cross_site = request.headers.get("Sec-Fetch-Site", "") == "cross-site"
    if cross_site or not isinstance(field, str) or not csrf_ok(_csrf_key(ctx), token, field):
        return _html("forbidden.html", status=403, back=f"/n/stop/{token}")
    if await notices.opt_out(ctx, token) is None:
        return not_found_page()
    return _html("optout.html", done=True, csrf="", action="")


@routes.get("/t/{rest:.+}")
async def unknown_page(request: web.Request) -> web.Response:
    """Anything else under /t/ looks exactly like an unknown token."""
    return not_found_page()


@cache
def _stylesheet() -> bytes:
    return resources.files("courier.web").joinpath("static", "site.css").read_bytes()


@routes.get("/static/site.css")
async def stylesheet(request: web.Request) -> web.Response:
    response = web.Response(body=_stylesheet(), content_type="text/css", charset="utf-8")
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@cache
def _optin_script() -> bytes:
    return resources.files("courier.web").joinpath("static", "optin.js").read_bytes()


@routes.get("/static/optin.js")
async def optin_script(request: web.Request) -> web.Response:
    """The opt-in form's optional enhancement (the form works without it)."""
    response = web.Response(
        body=_optin_script(), content_type="application/javascript", charset="utf-8"
    )
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def is_page_path(path: str) -> bool:
    """True for the HTML pages (not part of the JSON API's OpenAPI document)."""
    return path.startswith(PAGE_PREFIXES)
