"""A Pos Indonesia simulator that speaks the wire format of couriers.md §2, quirks included.

Serves, like the WSO2 gateway in front of Pos's services:

- ``POST /token``: client credentials with HTTP Basic; 401 ``invalid_client`` for a wrong key;
  opaque UUID tokens that expire after ``token_ttl_seconds`` of *clock* time;
- ``POST /webhook/1.0/AddPostingDoc`` (and the sandbox's ``/webhookpos/1.0.1/AddPostingDoc``):
  Bearer checked (401 WSO2 fault when missing, unknown or expired), body checked against
  ``couriers/posind/posting_request``, a reused ``orderid`` refused, barcodes ``P`` + 13 digits;
- ``POST /utilitas/1.0.1/getTrackAndTrace``: one barcode; ``{"rs_tnt": null}`` when unknown or
  not yet scanned; ``r_tnt`` a bare object when there is one event, an array otherwise; event
  texts as Pos writes them (POSTING LOKET with semicolon fields, MANIFEST SERAH/TERIMA,
  PROSES ANTAR, SELESAI ANTAR "Diterima … PENERIMA / KETERANGAN" or "Antar Ulang … KETERANGAN").

Our own inventions, marked [I] because no public capture shows them: the AddPostingDoc answer
shape (``responseCode``/``responseDesc``/``barcode``; with the ``pos_alt_answer`` variation
``respcode``/``respmsg``, the naming a real answer used), its error codes, and the return events
PROSES RETUR / SELESAI RETUR. A lost parcel simply goes silent, as real ones do. Pos gives no
POD photo or signature (couriers.md §4), so none is served. Plus the ``/_sim/`` control API of
:mod:`simulators.control` and the variations of :mod:`simulators.variations` (other reason
texts, relation spellings, returns without a final scan, both answer shapes, scans listed
twice). Fault endpoints are named ``token``, ``create`` and ``track``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import json
import uuid
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Any

from aiohttp import hdrs, web

import schemas
from core.clock import WIB, Clock
from simulators.control import install
from simulators.faults import FaultTable, run_with_faults
from simulators.lifecycle import Step, StepKind
from simulators.orders import SimOrder, SimState
from simulators.variations import DUPLICATE_SCANS, POS_ALT_ANSWER, TEXT_AFTER_BRACKET, Variations

DEFAULTS: Mapping[str, Any] = {
    "consumer_key": "sim-consumer-key",
    "consumer_secret": "sim-consumer-secret",
    "userid": 1,
    "memberid": "DUMMY05400A",  # the sandbox member code integrators use
    "token_ttl_seconds": 3600,
    "seed": "posind",
    "origin_regency_code": "35.05",
    "pickup_slots": ["10:00", "15:00"],
}
OPTION_KEYS = frozenset({*DEFAULTS, "faults", "variations"})

# Kemendagri province codes by name, to tell distance from the address Pos receives (it has
# no regency code field). Unknown names count as far away.
PROVINCE_CODES: Mapping[str, str] = {
    "ACEH": "11",
    "SUMATERA UTARA": "12",
    "SUMATERA BARAT": "13",
    "RIAU": "14",
    "JAMBI": "15",
    "SUMATERA SELATAN": "16",
    "BENGKULU": "17",
    "LAMPUNG": "18",
    "KEPULAUAN BANGKA BELITUNG": "19",
    "KEPULAUAN RIAU": "21",
    "DKI JAKARTA": "31",
    "JAWA BARAT": "32",
    "JAWA TENGAH": "33",
    "DI YOGYAKARTA": "34",
    "DAERAH ISTIMEWA YOGYAKARTA": "34",
    "JAWA TIMUR": "35",
    "BANTEN": "36",
    "BALI": "51",
    "NUSA TENGGARA BARAT": "52",
    "NUSA TENGGARA TIMUR": "53",
    "KALIMANTAN BARAT": "61",
    "KALIMANTAN TENGAH": "62",
    "KALIMANTAN SELATAN": "63",
    "KALIMANTAN TIMUR": "64",
    "KALIMANTAN UTARA": "65",
    "SULAWESI UTARA": "71",
    "SULAWESI TENGAH": "72",
    "SULAWESI SELATAN": "73",
    "SULAWESI TENGGARA": "74",
    "GORONTALO": "75",
    "SULAWESI BARAT": "76",
    "MALUKU": "81",
    "MALUKU UTARA": "82",
    "PAPUA": "91",
    "PAPUA BARAT": "92",
    "PAPUA SELATAN": "93",
    "PAPUA TENGAH": "94",
    "PAPUA PEGUNUNGAN": "95",
    "PAPUA BARAT DAYA": "96",
}
SERVICE_NAMES: Mapping[str, str] = {"240": "PAKET KILAT KHUSUS", "447": "POS EXPRESS"}  # [I]

STATE_KEY: web.AppKey[PosSimulator] = web.AppKey("posind_simulator")


def adapter_settings(base_url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Settings (``couriers.posind``) for :class:`~adapters.posind.adapter.PosIndonesiaAdapter`
    pointed at a simulator at ``base_url`` started with ``options``."""
    o = {**DEFAULTS, **(options or {})}
    return {
        "base_url": base_url.rstrip("/"),
        "consumer_key": str(o["consumer_key"]),
        "consumer_secret": str(o["consumer_secret"]),
        "userid": int(o["userid"]),
        "memberid": str(o["memberid"]),
        "service": "240",
    }


def _wso2_fault(code: int, message: str, description: str) -> web.Response:
    return web.json_response(
        {"fault": {"code": code, "message": message, "description": description}},
        status=401,
        headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="posindonesia"'},
    )


def _wall(when: datetime) -> str:
    return when.astimezone(WIB).strftime("%Y-%m-%d %H:%M:%S")


def _slots(values: Any) -> tuple[time, ...]:
    return tuple(time.fromisoformat(str(v)) for v in values)


def province_code(name: str) -> str:
    key = " ".join(name.upper().replace("PROVINSI", " ").split())
    return PROVINCE_CODES.get(key, "99")


class PosSimulator:
    def __init__(self, clock: Clock, options: Mapping[str, Any] | None = None) -> None:
        unknown = set(options or {}) - OPTION_KEYS
        if unknown:
            raise ValueError(f"unknown simulator option(s): {', '.join(sorted(unknown))}")
        opts = {**DEFAULTS, **(options or {})}
        self.consumer_key = str(opts["consumer_key"])
        self.consumer_secret = str(opts["consumer_secret"])
        self.userid = int(opts["userid"])
        self.memberid = str(opts["memberid"])
        self.token_ttl = float(opts["token_ttl_seconds"])
        self.state = SimState(
            clock=clock,
            faults=FaultTable(opts.get("faults")),
            variations=Variations.from_spec(opts.get("variations")),
            seed=str(opts["seed"]),
            origin_regency_code=str(opts["origin_regency_code"]),
            pickup_slots=_slots(opts["pickup_slots"]),
        )
        self.tokens: dict[str, datetime] = {}  # token -> expires at (clock time)
        self.sequence = 0

    # ---------------------------------------------------------------------------------- auth

    def _basic_ok(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            pair = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (ValueError, binascii.Error):
            return False
        key, sep, secret = pair.partition(":")
        given = (key, secret) if sep else ("", "")
        expected = f"{self.consumer_key}:{self.consumer_secret}".encode()
        return hmac.compare_digest(f"{given[0]}:{given[1]}".encode(), expected)

    def _bearer_refusal(self, request: web.Request) -> web.Response | None:
        header = request.headers.get(hdrs.AUTHORIZATION, "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _wso2_fault(
                900902, "Missing Credentials", "Required OAuth credentials not provided"
            )
        expires = self.tokens.get(token.strip())
        if expires is None or self.state.clock.now() >= expires:
            return _wso2_fault(
                900901, "Invalid Credentials", "Access failure for API: invalid or expired token"
            )
        return None

    async def token(self, request: web.Request) -> web.StreamResponse:
        async def issue() -> web.StreamResponse:
            if not self._basic_ok(request):
                return web.json_response(
                    {
                        "error_description": "Client Authentication failed.",
                        "error": "invalid_client",
                    },
                    status=401,
                )
            form = await request.post()
            if form.get("grant_type") != "client_credentials":
                return web.json_response(
                    {
                        "error_description": "Unsupported grant_type value",
                        "error": "unsupported_grant_type",
                    },
                    status=400,
                )
            value = str(uuid.uuid4())
            self.tokens[value] = self.state.clock.now() + timedelta(seconds=self.token_ttl)
            return web.json_response(
                {
                    "access_token": value,
                    "scope": "am_application_scope default",
                    "token_type": "Bearer",
                    "expires_in": int(self.token_ttl),
                }
            )

        return await run_with_faults(self.state, "token", issue)

    # ---------------------------------------------------------------------------------- create

    def _barcode(self) -> str:
        self.sequence += 1
        day = self.state.clock.now().astimezone(WIB).strftime("%y%m%d")
        return f"P{day}{self.sequence:07d}"

    def _destination_code(self, body: Mapping[str, Any]) -> str:
        by_type = {a.get("addresstype"): a for a in body["addresses"]}
        sender = by_type.get("senderlocation") or {}
        dest = by_type.get("deliverylocation") or by_type.get("receiverlocation") or {}
        if str(dest.get("city", "")).upper() == str(sender.get("city", "")).upper():
            return self.state.origin_regency_code
        return f"{province_code(str(dest.get('province', '')))}.00"

    async def create(self, request: web.Request) -> web.StreamResponse:
        refusal = self._bearer_refusal(request)
        if refusal is not None:
            return refusal
        return await run_with_faults(self.state, "create", lambda: self._create(request))

    async def _create(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._answer("", "400", "Invalid JSON", status=400)
        reference = ""
        if isinstance(body, dict) and isinstance(body.get("orderid"), str):
            reference = body["orderid"]
            self.state.create_counts[reference] += 1
        errors = schemas.check("couriers/posind/posting_request", body)
        if errors:
            return self._answer(reference, "101", f"Data tidak valid: {errors[0].path}")
        if body["memberid"] != self.memberid or body["userid"] != self.userid:
            return self._answer(reference, "103", "Memberid tidak terdaftar")
        if reference in self.state.orders:
            return self._answer(reference, "102", "Orderid sudah terdaftar")
        order = self.state.add_order(
            reference, self._barcode(), self._destination_code(body), payload=body
        )
        return self._answer(reference, "000", "Sukses", orderid=reference, barcode=order.waybill)

    def _answer(
        self, reference: str, code: str, desc: str, *, status: int = 200, **extra: str
    ) -> web.Response:
        """An AddPostingDoc answer in our inferred naming, or (``pos_alt_answer``) the
        ``respcode``/``respmsg`` naming a real answer used."""
        if self.state.variations.applies(POS_ALT_ANSWER, reference):
            return web.json_response({"respcode": code, "respmsg": desc, **extra}, status=status)
        return web.json_response(
            {"responseCode": code, "responseDesc": desc, **extra}, status=status
        )

    # ---------------------------------------------------------------------------------- track

    async def track(self, request: web.Request) -> web.StreamResponse:
        refusal = self._bearer_refusal(request)
        if refusal is not None:
            return refusal
        return await run_with_faults(self.state, "track", lambda: self._track(request))

    async def _track(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        barcode = body.get("barcode") if isinstance(body, dict) else None
        order = self.state.by_waybill(barcode) if isinstance(barcode, str) else None
        now = self.state.clock.now()
        events = render_events(order, now, self.state.variations) if order else []
        if not events:
            return web.json_response({"rs_tnt": None})
        return web.json_response({"rs_tnt": {"r_tnt": events[0] if len(events) == 1 else events}})


# -------------------------------------------------------------------------------------- render


def _party(order: SimOrder, addresstype: str) -> Mapping[str, Any]:
    for address in order.payload.get("addresses", []):
        if address.get("addresstype") == addresstype:
            return dict(address)
    return {}


def _offices(order: SimOrder) -> tuple[str, str, str, str]:
    """(origin name, origin code, destination name, destination code) from the addresses."""
    sender = _party(order, "senderlocation")
    receiver = _party(order, "deliverylocation") or _party(order, "receiverlocation")
    origin_zip = str(sender.get("zipcode", "00000"))
    dest_zip = str(receiver.get("zipcode", "00000"))
    return (
        f"KPRK {str(sender.get('city', '')).upper()} {origin_zip[:3]}00".strip(),
        f"{origin_zip[:3]}00",
        f"KPC {str(receiver.get('city', '')).upper()} {dest_zip}".strip(),
        dest_zip,
    )


def _posting_description(order: SimOrder) -> str:
    s, r = _party(order, "senderlocation"), _party(order, "receiverlocation")
    product = str(order.payload.get("itemproperties", {}).get("productid", ""))
    weight = order.payload.get("itemproperties", {}).get("weight", 0)
    fields = [
        f"LAYANAN : {SERVICE_NAMES.get(product, product)}",
        f"PENGIRIM : {s.get('name', '')}",
        str(s.get("address", "")),
        str(s.get("city", "")),
        str(s.get("zipcode", "")),
        str(s.get("phone", "")),
        f"PENERIMA : {r.get('name', '')}",
        str(r.get("address", "")),
        str(r.get("city", "")),
        str(r.get("phone", "")),
        f"BERAT : {weight} GRAM",
        str(r.get("zipcode", "")),  # the receiver postcode, about the 12th field
    ]
    return ";".join(fields)


def _delivered_description(order: SimOrder, step: Step, *, trailing: bool = False) -> str:
    if step.relation.casefold() in ("orang serumah", "serumah"):
        who = step.relation  # couriers often write the relation alone
    else:
        name = step.receiver or str(_party(order, "receiverlocation").get("name", ""))
        who = f"{name.upper()} ({step.relation})" if step.relation else name.upper()
    if trailing:  # more after the relation, in the field or in the next one [I]
        who += " TTD DIGITAL" if "(" in who else ";FOTO : TERLAMPIR"
    return f"Diterima;PENERIMA / KETERANGAN : {who}"


def _as_written(
    order: SimOrder, index: int, step: Step, variations: Variations | None
) -> tuple[Step, bool]:
    """The step with its relation and reason in the words this courier's staff may use, and
    whether text follows the relation."""
    if variations is None:
        return step, False
    reason = variations.reason(f"{order.waybill}:{index}", step.reason)
    worded = dataclasses.replace(
        step,
        relation=variations.relation_word(order.waybill, step.relation),
        reason=reason if reason == step.reason else reason.upper(),  # counter staff type caps
    )
    return worded, variations.applies(TEXT_AFTER_BRACKET, order.waybill)


def render_events(
    order: SimOrder, now: datetime, variations: Variations | None = None
) -> list[dict[str, str]]:
    """The r_tnt events Pos would show for ``order`` at ``now``, oldest first.

    BOOKED has no event (Pos knows the item once the counter accepts it) and LOST has none
    either (a lost item just stops moving). With ``duplicate_scans`` an event may be listed
    twice, as the same scan recorded twice.
    """
    origin, origin_code, dest, dest_code = _offices(order)
    origin_location = order.steps[0].location

    def office(step: Step) -> tuple[str, str]:
        if step.location == origin_location:
            return origin, origin_code
        if step.location.startswith("HUB "):
            return f"MAIL PROCESSING CENTER {step.location[4:]}", "60900"
        return dest, dest_code

    steps = order.steps
    seen = len(order.visible_steps(now))  # visible steps are a prefix: steps are time-ordered
    out: list[dict[str, str]] = []
    for index, step in enumerate(steps[:seen]):
        name, code = office(step)
        next_office = office(steps[index + 1])[0] if index + 1 < len(steps) else name
        previous_office = office(steps[index - 1])[0] if index else name
        worded, trailing = _as_written(order, index, step, variations)
        rendered = _render(order, worded, next_office, previous_office, trailing=trailing)
        if rendered is None:
            continue
        event_name, description = rendered
        event = {
            "barcode": order.waybill,
            "eventDate": _wall(step.at),
            "eventName": event_name,
            "officeCode": code,
            "officeName": name,
            "description": description,
        }
        twice = variations is not None and variations.applies(
            DUPLICATE_SCANS, f"{order.waybill}:{index}"
        )
        out.extend([event, dict(event)] if twice else [event])
    return out


def _render(
    order: SimOrder, step: Step, next_office: str, previous_office: str, *, trailing: bool
) -> tuple[str, str] | None:
    kind = step.kind
    if kind is StepKind.PICKED_UP:
        return "POSTING LOKET", _posting_description(order)
    if kind is StepKind.IN_TRANSIT:
        return "MANIFEST SERAH", f"KANTOR TUJUAN : {next_office}"
    if kind is StepKind.ARRIVED_HUB:
        return "MANIFEST TERIMA", f"KANTOR ASAL : {previous_office}"
    if kind is StepKind.OUT_FOR_DELIVERY:
        return "PROSES ANTAR", "Kiriman dibawa petugas antar"
    if kind is StepKind.DELIVERED:
        return "SELESAI ANTAR", _delivered_description(order, step, trailing=trailing)
    if kind is StepKind.ATTEMPT_FAILED:
        return "SELESAI ANTAR", f"Antar Ulang;KETERANGAN : {step.reason}"
    if kind is StepKind.RETURNING:  # [I]
        return "PROSES RETUR", f"KETERANGAN : {step.reason}"
    if kind is StepKind.RETURNED:  # [I]
        return "SELESAI RETUR", "Diterima kembali oleh pengirim"
    return None  # BOOKED, LOST: nothing shows


# -------------------------------------------------------------------------------------- app


def create_app(clock: Clock, *, options: Mapping[str, Any] | None = None) -> web.Application:
    """The simulator app. ``options``: consumer_key, consumer_secret, userid, memberid,
    token_ttl_seconds, seed, origin_regency_code, pickup_slots (["HH:MM", …] WIB), faults
    (a :class:`~simulators.lifecycle.FaultTable` spec)."""
    sim = PosSimulator(clock, options)
    app = web.Application()
    app[STATE_KEY] = sim
    app.add_routes(
        [
            web.post("/token", sim.token),
            web.post("/webhook/1.0/AddPostingDoc", sim.create),
            web.post("/webhookpos/1.0.1/AddPostingDoc", sim.create),
            web.post("/utilitas/1.0.1/getTrackAndTrace", sim.track),
        ]
    )
    install(app, sim.state)
    return app
