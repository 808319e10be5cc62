"""The opt-in page ``/opt-in``: an applicant asks for home delivery from a phone, with no
JavaScript needed.

One form, posted back to itself. The address is chosen province → regency/city → district →
village from the bundled regions data: "Perbarui daftar wilayah" posts the form and the page
comes back with the next list filled (nothing is checked or stored on that round trip, and the
identity fields are kept in the form, never in a URL). "Kirim" runs the same use case as
``POST /api/v1/delivery-requests`` after the same schema check: the same generic identity
error, the same failure limits (per application and per client address), the eligibility
answer with its reason, and on success the tracking link, shown once (it is also sent to the
phone and e-mail on file by the outbox).

CSRF: a ``nonce.mac`` field as on the tracking page (the key has its own purpose); a request a
browser marks cross-site is refused. The answer carries ``Cache-Control: no-store``: the link
must not stay in a cache.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import structlog
from aiohttp import web

import schemas
from courier.domain import regions
from courier.services import hashing, optin
from courier.services.errors import Kind, ServiceError
from courier.web.keys import context_of
from courier.web.optin import client_address
from courier.web.pages import both, csrf_field, csrf_ok, html_page

routes = web.RouteTableDef()
log = structlog.get_logger()

CSRF_PURPOSE = "optin-page-csrf"
# the one page that runs a script: its own file from this origin, never inline
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
CSRF_SUBJECT = "opt-in"
FIELDS = (
    "office_code",
    "application_no",
    "date_of_birth",
    "phone",
    "email",
    "province_code",
    "regency_code",
    "district_code",
    "village_code",
    "postal_code",
    "street",
    "note",
)
REGION_FIELDS = ("province_code", "regency_code", "district_code", "village_code")

# where a field error of the use case or the schema shows, by JSON path
_LABELS = {
    "$.application_no": "application_no",
    "$.date_of_birth": "date_of_birth",
    "$.phone": "phone",
    "$.email": "email",
    "$.office_code": "office_code",
    "$.consent": "consent",
    "$.address.street": "street",
    "$.address.note": "note",
    "$.address.postal_code": "postal_code",
    "$.address.province_code": "province_code",
    "$.address.regency_code": "regency_code",
    "$.address.district_code": "district_code",
    "$.address.village_code": "village_code",
}
FIELD_HELP = {
    "id": "Periksa isian ini.",
    "en": "Check this field.",
}


def _key(pepper: str) -> bytes:
    return hashing.derive_key(pepper, CSRF_PURPOSE)


def _values(form: Mapping[str, Any]) -> dict[str, str]:
    values = {}
    for name in FIELDS:
        raw = form.get(name, "")
        values[name] = raw.strip() if isinstance(raw, str) else ""
    return values


def _cascade(values: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    """The four lists, each under the choice above it; a choice that is not under its parent
    (the province changed) is cleared with everything below it."""
    lists: dict[str, list[tuple[str, str]]] = {
        "province_code": [(p.code, p.name) for p in regions.provinces()],
        "regency_code": [],
        "district_code": [],
        "village_code": [],
    }
    children = {
        "regency_code": lambda code: [(r.code, r.name) for r in regions.regencies_of(code)],
        "district_code": lambda code: [(d.code, d.name) for d in regions.districts_of(code)],
        "village_code": lambda code: [(v.code, v.name) for v in regions.villages_of(code)],
    }
    for parent, child in itertools.pairwise(REGION_FIELDS):
        chosen = values[parent]
        if chosen and chosen in {code for code, _ in lists[parent]}:
            lists[child] = children[child](chosen)
        else:
            values[parent] = ""
            for below in REGION_FIELDS[REGION_FIELDS.index(parent) + 1 :]:
                values[below] = ""
            break
    if values["village_code"] and values["village_code"] not in {
        c for c, _ in lists["village_code"]
    }:
        values["village_code"] = ""
    village = regions.lookup_village(values["village_code"]) if values["village_code"] else None
    if village is not None and not values["postal_code"]:
        values["postal_code"] = village.postal_code
    return lists


def _postal_of(code: str) -> str:
    village = regions.lookup_village(code)
    return village.postal_code if village is not None else ""


async def _render(
    request: web.Request,
    values: dict[str, str],
    *,
    consent: bool = False,
    status: int = 200,
    error: dict[str, str] | None = None,
    invalid: frozenset[str] = frozenset(),
) -> web.Response:
    ctx = context_of(request)
    offices = await optin.offices(ctx)
    if not values["office_code"] and len(offices) == 1:
        values["office_code"] = offices[0][0]
    lists = _cascade(values)
    response = html_page(
        "optin.html",
        status=status,
        values=values,
        lists=lists,
        offices=offices,
        consent=consent,
        error=error,
        invalid=invalid,
        field_help=FIELD_HELP,
        postal_of=_postal_of,
        csrf=csrf_field(_key(ctx.settings.passport_pepper), CSRF_SUBJECT),
    )
    response.headers["Content-Security-Policy"] = CSP
    return response


@routes.get("/opt-in")
async def optin_form(request: web.Request) -> web.Response:
    return await _render(request, _values({}))


def _body(values: Mapping[str, str], consent: bool) -> dict[str, Any]:
    address = {k: values[k] for k in (*REGION_FIELDS, "postal_code", "street")}
    if values["note"]:
        address["note"] = values["note"]
    body: dict[str, Any] = {
        "office_code": values["office_code"],
        "application_no": values["application_no"],
        "date_of_birth": values["date_of_birth"],
        "phone": values["phone"],
        "address": address,
        "consent": consent,
    }
    if values["email"]:
        body["email"] = values["email"]
    return body


def _invalid_fields(errors: list[schemas.FieldError]) -> frozenset[str]:
    found = set()
    for err in errors:
        for path, name in _LABELS.items():
            if err.path == path or err.path.startswith(path + "."):
                found.add(name)
    return frozenset(found)


@routes.post("/opt-in")
async def optin_post(request: web.Request) -> web.Response:
    ctx = context_of(request)
    try:
        form = await request.post()
    except (UnicodeDecodeError, LookupError, ValueError):
        return html_page("forbidden.html", status=403, back="/opt-in")
    field = form.get("csrf")
    cross_site = request.headers.get("Sec-Fetch-Site", "") == "cross-site"
    key = _key(ctx.settings.passport_pepper)
    if cross_site or not isinstance(field, str) or not csrf_ok(key, CSRF_SUBJECT, field):
        log.info("optin_page_csrf_refused")
        return html_page("forbidden.html", status=403, back="/opt-in")
    values = _values(form)
    consent = form.get("consent") == "yes"
    if form.get("action") != "submit":
        return await _render(request, values, consent=consent)
    body = _body(values, consent)
    errors = schemas.check("api/delivery_request", body)
    if not consent:
        errors.append(schemas.FieldError("$.consent", "consent is required"))
    if errors:
        return await _render(
            request,
            values,
            consent=consent,
            status=422,
            error={
                "id": "Ada isian yang perlu diperbaiki: lihat tanda di bawah.",
                "en": "Some fields need correcting: see the marks below.",
            },
            invalid=_invalid_fields(errors),
        )
    try:
        result = await optin.opt_in(
            ctx,
            optin.OptInRequest(
                office_code=values["office_code"],
                application_no=values["application_no"],
                date_of_birth=values["date_of_birth"],
                phone=values["phone"],
                address=body["address"],
                email=values["email"],
                client=client_address(request, ctx.settings.trusted_proxies),
            ),
        )
    except ServiceError as err:
        status = {
            Kind.RATE_LIMITED: 429,
            Kind.CONFLICT: 409,
        }.get(err.kind, 422)
        invalid = _invalid_fields(list(err.details)) if err.kind is Kind.INVALID else frozenset()
        response = await _render(
            request,
            values,
            consent=consent,
            status=status,
            error=both(err.message),
            invalid=invalid,
        )
        if err.retry_after is not None:
            response.headers["Retry-After"] = str(err.retry_after)
        return response
    return html_page(
        "optin_done.html",
        status=201 if result.outcome == "created" else 200,
        result=result,
        eligibility={"id": result.eligibility.message_id, "en": result.eligibility.message_en},
    )
