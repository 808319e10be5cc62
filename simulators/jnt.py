"""A local J&T Express Indonesia that speaks the legacy wire format at the real paths.

Served (paths as in production, couriers.md §1A; the sandbox tracking path too)::

    POST /jts-idn-ecommerce-api/api/order/create          data_param + data_sign (order key)
    POST /jts-idn-ecommerce-api/api/order/cancel          data_param + data_sign (cancel key)
    POST /jandt-order-web/track/trackAction!tracking.action   JSON {awb, eccompanyid} + Basic
    POST /jandt_track/track/trackAction!tracking.action       (sandbox path, same handler)
    POST /webopenplatformapi/api/order/getOrders          JMS bizContent + apiAccount/digest
    GET  /pod/{waybill}/{kind}.png?expires=…&signature=…  POD photo / signature, links expire
    /_sim/…                                               control API (simulators.control)
    POST /_sim/push  {"duplicate": bool, "reorder": bool} push what is new, now

Like J&T it answers business errors inside HTTP 200 (``detail[0].status == "Error"``), refuses
a reused ``orderid`` with "Orderid tidak boleh sama" (without the AWB), refuses a cancel after
pickup with "Status pesanan adalah : GOT", tracks one AWB per call, and mints AWBs ``JO`` + 10
digits. Wordings J&T does not publish (bad signature, unknown order, tracking texts) are this
simulator's, chosen to match what integrators classify (couriers.md §1A) and marked [I].
Signatures are checked with this package's own implementation (:mod:`simulators.jnt_wire`),
never the client's.

Each parcel's life is planned once at creation by :func:`simulators.lifecycle.plan_lifecycle`
and revealed as the clock moves. Pushes (JMS style) are sent to ``push_url`` on
``POST /_sim/push`` or every ``push_interval`` wall seconds, signed; on demand a batch is sent
twice (``duplicate``) or with its items and scans reversed (``reorder``). The real world's
variations (:mod:`simulators.variations`: text after the bracket, relations in notes, other
reason texts, returns without a final scan, no order lookup, duplicated scans) are switched by
the ``variations`` option or ``/_sim/variations``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

import schemas
from core.clock import Clock
from simulators import jnt_wire as wire
from simulators.artefacts import artefact_bytes, sign_link, verify_link
from simulators.control import install
from simulators.faults import FaultTable, run_with_faults
from simulators.lifecycle import DEFAULT_ORIGIN_REGENCY, Step, StepKind
from simulators.orders import SimOrder, SimState
from simulators.variations import (
    BRACKET_TEMPLATES,
    BRACKET_TEMPLATES_NO_RELATION,
    DUPLICATE_SCANS,
    NO_LOOKUP,
    REASON_TEXTS,
    RELATION_IN_NOTE,
    TEXT_AFTER_BRACKET,
    Variations,
)

CREATE_PATH = "/jts-idn-ecommerce-api/api/order/create"
CANCEL_PATH = "/jts-idn-ecommerce-api/api/order/cancel"
TRACK_PATHS = (
    "/jandt-order-web/track/trackAction!tracking.action",
    "/jandt_track/track/trackAction!tracking.action",
)
FIND_PATH = "/webopenplatformapi/api/order/getOrders"

# Simulator-only J&T city codes for the model office's surroundings [I]: real codes come from
# J&T's area list under contract. Area codes are the city code + "001".
SIM_CITY_CODES: Mapping[str, str] = {
    "35.05": "BLT",  # Kabupaten Blitar (origin)
    "35.72": "BLR",  # Kota Blitar
    "35.07": "MLK",  # Kabupaten Malang
    "35.73": "MLG",  # Kota Malang
    "35.04": "TLA",  # Kabupaten Tulungagung
    "35.06": "KDR",  # Kabupaten Kediri
    "35.71": "KDK",  # Kota Kediri
    "35.78": "SUB",  # Kota Surabaya
    "31.71": "JKT",  # Jakarta Pusat
    "51.71": "DPS",  # Denpasar
}

DEFAULT_OPTIONS: Mapping[str, Any] = {
    "username": "sim-user",
    "api_key": "sim-api-key",
    "order_key": "sim-order-key",
    "cancel_key": "sim-cancel-key",
    "eccompanyid": "SIMCOMPANY",
    "tracking_password": "sim-track-password",
    "customer_code": "SIMCUSTOMER",
    "api_account": "sim-account",
    "private_key": "sim-private-key",
    "sign_variants": ("hex",),  # add "raw" to accept the raw-md5 variant too
    "success_as_string": False,  # answer "success": "true" instead of true
    "history_newest_first": True,
    "pod_link_seconds": 3600.0,  # clock seconds a POD link stays valid
    "push_url": None,
    "push_interval": None,  # wall seconds between automatic pushes; None: on request only
    "public_url": None,  # base of POD links in pushes; default: where the last request came
    "seed": "sim",
    "faults": None,  # simulators.faults.FaultTable spec
    "variations": None,  # simulators.variations.Variations spec
    "city_codes": SIM_CITY_CODES,
}

_LEGACY_WORDS: Mapping[StepKind, tuple[str, str]] = {
    StepKind.BOOKED: ("101", "Manifes"),
    StepKind.PICKED_UP: ("100", "Paket telah di pick up oleh Sprinter J&T"),
    StepKind.IN_TRANSIT: ("100", "Paket akan dikirimkan ke {next}"),
    StepKind.ARRIVED_HUB: ("100", "Paket telah sampai di {location}"),
    StepKind.OUT_FOR_DELIVERY: ("100", "Paket akan dikirim ke alamat penerima"),
    StepKind.ATTEMPT_FAILED: ("150", "Paket gagal dikirim: {reason}"),
    StepKind.DELIVERED: ("200", "Paket telah diterima oleh {receiver} ({relation})"),
    StepKind.RETURNING: ("401", "Paket akan diretur ke pengirim"),
    StepKind.RETURNED: ("401", "Paket retur telah diterima oleh pengirim"),
    StepKind.LOST: ("150", "Paket hilang"),
}

_JMS_SCANS: Mapping[StepKind, tuple[str, str]] = {
    StepKind.PICKED_UP: ("10", "Pickup scan"),
    StepKind.IN_TRANSIT: ("20", "Departure scan"),
    StepKind.ARRIVED_HUB: ("30", "Arrival scan"),
    StepKind.OUT_FOR_DELIVERY: ("94", "Delivery scan"),
    StepKind.ATTEMPT_FAILED: ("110", "Abnormal parcel scan"),
    StepKind.DELIVERED: ("100", "Delivery Signature"),
    StepKind.RETURNING: ("172", "Return scan"),
    StepKind.RETURNED: ("173", "Return Delivery Signature"),
    StepKind.LOST: ("301", "Lost parcel"),
}


@dataclass
class JntSimulator:
    state: SimState
    options: Mapping[str, Any]
    regency_by_city: dict[str, str]
    pushed: dict[str, int] = field(default_factory=dict)  # reference -> steps pushed
    push_log: list[dict[str, Any]] = field(default_factory=list)
    next_awb: int = 27364832
    base_url: str = ""
    session: aiohttp.ClientSession | None = None

    @property
    def clock(self) -> Clock:
        return self.state.clock

    def opt(self, name: str) -> Any:
        return self.options[name]


SIM_KEY = web.AppKey("jnt_simulator", JntSimulator)


def adapter_settings(base_url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Settings for :class:`adapters.jnt.adapter.JntAdapter` pointed at a simulator."""
    o = {**DEFAULT_OPTIONS, **(options or {})}
    base = base_url.rstrip("/")
    cities = dict(o["city_codes"])
    return {
        "create_url": base + CREATE_PATH,
        "cancel_url": base + CANCEL_PATH,
        "track_url": base + TRACK_PATHS[0],
        "find_url": base + FIND_PATH,
        # the simulator serves getOrders (unless its no_lookup variation is on: then the
        # adapter learns from the 404 that the account has none)
        "lookup": True,
        "username": o["username"],
        "api_key": o["api_key"],
        "order_key": o["order_key"],
        "cancel_key": o["cancel_key"],
        "eccompanyid": o["eccompanyid"],
        "tracking_password": o["tracking_password"],
        "customer_code": o["customer_code"],
        "api_account": o["api_account"],
        "private_key": o["private_key"],
        "origin_code": cities.get(DEFAULT_ORIGIN_REGENCY, "BLT"),
        "city_codes": cities,
        "area_codes": {regency: f"{city}001" for regency, city in cities.items()},
        # the simulator serves its POD links itself, on this machine: said explicitly, since
        # links to loopback or private addresses are refused unless their origin allows them
        "pod_origins": [{"origin": _origin(base), "allow_private": True}],
    }


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# --------------------------------------------------------------------------------------------
# Wire helpers


def _signature_ok(sim: JntSimulator, text: str, given: str, key: str) -> bool:
    for variant in sim.opt("sign_variants"):
        if hmac.compare_digest(given.encode(), wire.data_sign(text, key, variant).encode()):
            return True
    return False


def _legacy_answer(
    sim: JntSimulator, ok: bool, items: list[dict[str, str]], desc: str = ""
) -> web.Response:
    success: Any = ok
    if ok and sim.opt("success_as_string"):
        success = "true"
    body = {"success": success, "desc": desc or ("Request berhasil" if ok else "Request gagal")}
    body["detail"] = items
    return web.Response(text=wire.to_json(body), content_type="application/json")


def _error_item(orderid: str, reason: str, *, awb_fields: bool) -> dict[str, str]:
    item = {"orderid": orderid, "status": "Error", "reason": reason}
    if awb_fields:
        item["etd"] = "No Data"
    return item


async def _signed_detail(
    sim: JntSimulator, request: web.Request, key: str, schema: str
) -> tuple[list[dict[str, Any]], list[dict[str, str]]] | web.Response:
    """The ``detail`` items of a signed legacy request, plus per-item errors; or the refusal."""
    form = await request.post()
    text, given = form.get("data_param"), form.get("data_sign")
    if not isinstance(text, str) or not isinstance(given, str):
        return _legacy_answer(sim, False, [], "data_param dan data_sign wajib diisi")
    if not _signature_ok(sim, text, given, key):
        return _legacy_answer(sim, False, [], "Data signature tidak valid")  # [I] wording
    try:
        body = json.loads(text)
    except ValueError:
        return _legacy_answer(sim, False, [], "Format data_param tidak valid")
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, list) or not detail:
        return _legacy_answer(sim, False, [], "Format data_param tidak valid")
    bad: dict[int, str] = {}
    for err in schemas.check(f"couriers/jnt/{schema}", body):
        found = re.match(r"\$\.detail\[(\d+)\]\.?([A-Za-z_]*)", err.path)
        if found:
            bad.setdefault(int(found.group(1)), found.group(2) or "detail")
    errors: list[dict[str, str]] = [{} for _ in detail]
    for i, item in enumerate(detail):
        orderid = str(item.get("orderid", "")) if isinstance(item, dict) else ""
        if i in bad:
            errors[i] = {"orderid": orderid, "reason": f"Data tidak valid: {bad[i]}"}
        elif item.get("username") != sim.opt("username") or item.get("api_key") != sim.opt(
            "api_key"
        ):
            errors[i] = {"orderid": orderid, "reason": "Username atau api key tidak valid"}
    return detail, errors


def _wall(step: Step) -> str:
    return wire.wall(step.at)


def _pod_links(sim: JntSimulator, order: SimOrder, base: str) -> dict[str, str]:
    expires = sim.clock.now() + timedelta(seconds=float(sim.opt("pod_link_seconds")))
    links = {}
    for kind, name in (("photo", "sigPicUrl"), ("signature", "electronicSignaturePicUrl")):
        path = f"/pod/{order.waybill}/{kind}.png"
        links[name] = base + sign_link(sim.state.link_secret, path, expires)
    return links


def _receiver(order: SimOrder, step: Step) -> str:
    return step.receiver or str(order.payload.get("receiver_name", ""))


def _delivered_text(
    sim: JntSimulator, order: SimOrder, step: Step, *, note_allowed: bool
) -> tuple[str, str]:
    """(text, note) of a delivered scan. The note carries the relation only on the legacy
    history with ``relation_in_note``; the push (no note field) always names it in the text."""
    v, key = sim.state.variations, order.waybill
    name, relation = _receiver(order, step), v.relation_word(key, step.relation)
    in_note = note_allowed and v.applies(RELATION_IN_NOTE, key)
    if v.applies(TEXT_AFTER_BRACKET, key):
        templates = BRACKET_TEMPLATES_NO_RELATION if in_note else BRACKET_TEMPLATES
        text = v.pick(TEXT_AFTER_BRACKET, key, templates).format(name=name, relation=relation)
    elif in_note:
        text = f"Paket telah diterima oleh {name}"
    else:
        text = f"Paket telah diterima oleh {name} ({relation})"
    return text, relation if in_note else ""


# Problem-scan wordings other than "Paket gagal dikirim: …" ({reason} filled in)
_LEGACY_PROBLEM_TEXTS = ("{reason}", "Paket bermasalah: {reason}", "Problem: {reason}")
_JMS_PROBLEM_TEXTS = ("{reason}", "Abnormal parcel: {reason}", "Paket gagal antar, {reason}")


def _reason(sim: JntSimulator, order: SimOrder, i: int) -> tuple[str, bool]:
    """(the reason as written, whether it was varied) of step ``i``."""
    key = f"{order.waybill}:{i}"
    planned = order.steps[i].reason
    written = sim.state.variations.reason(key, planned)
    return written, written != planned or sim.state.variations.applies(REASON_TEXTS, key)


def _history_item(sim: JntSimulator, order: SimOrder, i: int, base: str) -> dict[str, Any]:
    step = order.steps[i]
    code, template = _LEGACY_WORDS[step.kind]
    following = order.steps[i + 1].location if i + 1 < len(order.steps) else step.location
    reason, varied = _reason(sim, order, i)
    note = reason
    if step.kind is StepKind.DELIVERED:
        text, note = _delivered_text(sim, order, step, note_allowed=True)
    elif step.kind is StepKind.ATTEMPT_FAILED and varied:
        key = f"{order.waybill}:{i}"
        pattern = sim.state.variations.pick(REASON_TEXTS, key, _LEGACY_PROBLEM_TEXTS)
        text = pattern.format(reason=reason)
    else:
        text = template.format(
            next=following,
            location=step.location,
            reason=reason,
            receiver=_receiver(order, step),
            relation=step.relation,
        )
    item: dict[str, Any] = {
        "date_time": _wall(step),
        "city_name": step.location,
        "status": text,
        "status_code": code,
        "storeName": step.location,
        "nextSiteName": following,
        "note": note,
        "receiver": _receiver(order, step) if step.kind is StepKind.DELIVERED else "",
        "driverName": "Sprinter SIM",
        "driverPhone": "+6280000000000",
    }
    if step.kind is StepKind.DELIVERED:
        item.update(_pod_links(sim, order, base))
    return item


def _scan(sim: JntSimulator, order: SimOrder, i: int, base: str) -> dict[str, Any]:
    step = order.steps[i]
    code, name = _JMS_SCANS[step.kind]
    reason, varied = _reason(sim, order, i)
    if step.kind is StepKind.DELIVERED:
        desc = _delivered_text(sim, order, step, note_allowed=False)[0]
    elif step.kind is StepKind.ATTEMPT_FAILED:
        pattern = "Paket gagal dikirim: {reason}"
        if varied:
            key = f"{order.waybill}:{i}"
            pattern = sim.state.variations.pick(REASON_TEXTS, key, _JMS_PROBLEM_TEXTS)
        desc = pattern.format(reason=reason)
    elif step.kind is StepKind.LOST:
        desc = "Paket hilang"
    else:
        desc = f"{name} {step.location}"
    scan: dict[str, Any] = {
        "scanTime": _wall(step),
        "scanTypeCode": code,
        "scanTypeName": name,
        "scanType": name,
        "desc": desc,
        "scanNetworkName": step.location,
        "scanNetworkCity": step.location,
        "scanNetworkProvince": "",
        "staffName": "Sprinter SIM",
        "staffContact": "+6280000000000",
    }
    if reason:
        scan["problemType"] = reason
        scan["probleDescription"] = reason
    if step.kind is StepKind.DELIVERED:
        scan.update(_pod_links(sim, order, base))
    return scan


def _order_status(sim: JntSimulator, order: SimOrder) -> str:
    if order.cancelled_at is not None:
        return "104"
    return "103" if order.picked_up(sim.clock.now()) else "100"


# --------------------------------------------------------------------------------------------
# Handlers


async def _create(sim: JntSimulator, request: web.Request) -> web.StreamResponse:
    parsed = await _signed_detail(sim, request, sim.opt("order_key"), "create_request")
    if isinstance(parsed, web.Response):
        return parsed
    detail, errors = parsed
    answers: list[dict[str, str]] = []
    for item, error in zip(detail, errors, strict=True):
        orderid = str(item.get("orderid", ""))
        if error:
            answers.append(_error_item(orderid, error["reason"], awb_fields=True))
            continue
        sim.state.create_counts[orderid] += 1
        if orderid in sim.state.orders:
            answers.append(_error_item(orderid, "Orderid tidak boleh sama", awb_fields=True))
            continue
        awb = f"JO{sim.next_awb:010d}"
        sim.next_awb += 1
        city = str(item["destination_code"])
        regency = sim.regency_by_city.get(city, sim.state.origin_regency_code)
        sim.state.add_order(orderid, awb, regency, payload=item)
        answers.append(
            {
                "awb_no": awb,
                "orderid": orderid,
                "desCode": f"{city}-{item['receiver_area']}",
                "etd": "1-3",
                "status": "Sukses",
            }
        )
    return _legacy_answer(sim, True, answers)


async def _cancel(sim: JntSimulator, request: web.Request) -> web.StreamResponse:
    parsed = await _signed_detail(sim, request, sim.opt("cancel_key"), "cancel_request")
    if isinstance(parsed, web.Response):
        return parsed
    detail, errors = parsed
    now = sim.clock.now()
    answers: list[dict[str, str]] = []
    for item, error in zip(detail, errors, strict=True):
        orderid = str(item.get("orderid", ""))
        order = sim.state.orders.get(orderid)
        if error:
            answers.append(_error_item(orderid, error["reason"], awb_fields=False))
        elif order is None:
            answers.append(_error_item(orderid, "Orderid tidak ditemukan", awb_fields=False))
        elif order.cancelled_at is not None:
            reason = "Gagal membatalkan pesanan, Status pesanan adalah : CANCEL"
            answers.append(_error_item(orderid, reason, awb_fields=False))
        elif order.picked_up(now):
            reason = "Gagal membatalkan pesanan, Status pesanan adalah : GOT"
            answers.append(_error_item(orderid, reason, awb_fields=False))
        else:
            order.cancelled_at = now
            answers.append({"orderid": orderid, "status": "Sukses", "reason": ""})
    return _legacy_answer(sim, True, answers)


def _basic_ok(sim: JntSimulator, header: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.casefold() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user.encode(), str(sim.opt("eccompanyid")).encode()) and (
        hmac.compare_digest(password.encode(), str(sim.opt("tracking_password")).encode())
    )


def _track_error(error_id: str, message: str, status: int = 200) -> web.Response:
    body = {"error_id": error_id, "error_message": message}
    return web.Response(text=wire.to_json(body), status=status, content_type="application/json")


async def _track(sim: JntSimulator, request: web.Request) -> web.StreamResponse:
    if not _basic_ok(sim, request.headers.get("Authorization", "")):
        return _track_error("401", "Unauthorized", status=401)
    try:
        body = await request.json()
    except ValueError:
        return _track_error("400", "Invalid request")
    if schemas.check("couriers/jnt/track_request", body):
        return _track_error("400", "Invalid request")
    if body["eccompanyid"] != sim.opt("eccompanyid"):
        return _track_error("401", "Unauthorized", status=401)
    order = sim.state.by_waybill(body["awb"])
    if order is None:
        return _track_error("404", "Invalid AWB number")
    now, base = sim.clock.now(), str(request.url.origin())
    seen = len(order.visible_steps(now))
    history: list[dict[str, Any]] = []
    for i in range(seen):
        item = _history_item(sim, order, i, base)
        copies = 2 if sim.state.variations.applies(DUPLICATE_SCANS, f"{order.waybill}:{i}") else 1
        history.extend([item] * copies)
    if sim.opt("history_newest_first"):
        history.reverse()
    p = order.payload
    answer = {
        "awb": order.waybill,
        "orderid": order.reference,
        "detail": {
            "shipped_date": wire.wall(order.created_at),
            "services_code": p.get("expresstype", ""),
            "actual_amount": "0",
            "weight": p.get("weight", ""),
            "qty": p.get("qty", ""),
            "itemname": p.get("item_name", ""),
            "sender": {
                "name": p.get("shipper_name", ""),
                "addr": p.get("shipper_addr", ""),
                "city": p.get("origin_code", ""),
                "zipcode": "",
            },
            "receiver": {
                "name": p.get("receiver_name", ""),
                "addr": p.get("receiver_addr", ""),
                "zipcode": p.get("receiver_zip", ""),
                "city": p.get("destination_code", ""),
            },
        },
        "history": history,
    }
    return web.Response(text=wire.to_json(answer), content_type="application/json")


def _jms_answer(code: str, msg: str, data: Any = None) -> web.Response:
    body = {"code": code, "msg": msg, "data": data, "requestId": uuid.uuid4().hex}
    return web.Response(text=wire.to_json(body), content_type="application/json")


async def _find(sim: JntSimulator, request: web.Request) -> web.StreamResponse:
    if sim.state.variations.applies(NO_LOOKUP, str(sim.opt("api_account"))):
        # the account has no lookup: the gateway knows no such route (Spring-style 404) [I]
        body = {"timestamp": wire.wall(sim.clock.now()), "status": 404, "error": "Not Found"}
        return web.json_response({**body, "path": request.path}, status=404)
    account = request.headers.get("apiAccount", "")
    digest = request.headers.get("digest", "")
    if not account:
        return _jms_answer("145003051", "apiAccount is empty")
    if not digest:
        return _jms_answer("145003052", "digest is empty")
    if not request.headers.get("timestamp", ""):
        return _jms_answer("145003053", "timestamp is empty")
    if account != sim.opt("api_account"):
        return _jms_answer("145003010", "account does not exist")
    form = await request.post()
    biz = form.get("bizContent")
    if not isinstance(biz, str):
        return _jms_answer("145003050", "illegal parameters")
    expected = wire.jms_digest(biz, sim.opt("private_key"))
    if not hmac.compare_digest(digest.encode(), expected.encode()):
        return _jms_answer("145003030", "header signature check failed")
    try:
        query = json.loads(biz)
    except ValueError:
        return _jms_answer("145003050", "illegal parameters")
    if schemas.check("couriers/jnt/get_orders_request", query):
        return _jms_answer("145003050", "illegal parameters")
    wanted = set(query["serialNumber"])
    data = [
        {
            "txlogisticId": o.reference,
            "billCode": o.waybill,
            "orderStatus": _order_status(sim, o),
            "createTime": wire.wall(o.created_at),
        }
        for o in sim.state.orders.values()
        if (o.reference if query["command"] == 1 else o.waybill) in wanted
    ]
    return _jms_answer("1", "success", data)


async def _pod(sim: JntSimulator, request: web.Request) -> web.StreamResponse:
    waybill, kind = request.match_info["waybill"], request.match_info["kind"]
    if not verify_link(sim.state.link_secret, request.path, request.query, sim.clock.now()):
        return web.Response(status=403, text="Request has expired or the link is not valid")
    order = sim.state.by_waybill(waybill)
    now = sim.clock.now()
    delivered = order is not None and any(
        s.kind is StepKind.DELIVERED for s in order.visible_steps(now)
    )
    if kind not in ("photo", "signature") or not delivered:
        raise web.HTTPNotFound()
    return web.Response(body=artefact_bytes(kind, waybill), content_type="image/png")


# --------------------------------------------------------------------------------------------
# Push


def _new_scans(sim: JntSimulator, base: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    now = sim.clock.now()
    items: list[dict[str, Any]] = []
    marks: dict[str, int] = {}
    for order in sim.state.orders.values():
        seen = len(order.visible_steps(now))
        steps = [i for i in range(seen) if order.steps[i].kind is not StepKind.BOOKED]
        done = sim.pushed.get(order.reference, 0)
        if len(steps) <= done:
            continue
        start = done
        if done and sim.state.variations.applies(DUPLICATE_SCANS, f"{order.waybill}:{done - 1}"):
            start = done - 1  # the last scan pushed comes again with the new ones
        details = [_scan(sim, order, i, base) for i in steps[start:]]
        items.append(
            {"billCode": order.waybill, "txlogisticId": order.reference, "details": details}
        )
        marks[order.reference] = len(steps)
    return items, marks


async def push_now(
    sim: JntSimulator, *, duplicate: bool = False, reorder: bool = False
) -> dict[str, Any]:
    """Send every scan not yet acknowledged as one signed batch; remember what was ACKed."""
    url = sim.opt("push_url")
    if not url or sim.session is None:
        return {"sent": 0, "reason": "no push_url configured"}
    base = str(sim.opt("public_url") or sim.base_url)
    items, marks = _new_scans(sim, base)
    if not items:
        return {"sent": 0}
    duplicate = duplicate or sim.state.variations.applies(
        DUPLICATE_SCANS, f"push:{len(sim.push_log)}"
    )
    if reorder:  # out of order: last parcel first, newest scan first
        items = [{**i, "details": list(reversed(i["details"]))} for i in reversed(items)]
    headers, body = wire.push_request(
        items,
        api_account=sim.opt("api_account"),
        private_key=sim.opt("private_key"),
        now=sim.clock.now(),
    )
    acked, statuses = False, []
    for _ in range(2 if duplicate else 1):
        try:
            async with sim.session.post(url, data=body, headers=headers) as resp:
                answer = await resp.read()
                statuses.append(resp.status)
                acked = wire.acknowledged(resp.status, answer) or acked
        except (aiohttp.ClientError, TimeoutError):
            statuses.append(0)
    if acked:
        sim.pushed.update(marks)
    result = {
        "sent": sum(len(i["details"]) for i in items),
        "parcels": len(items),
        "deliveries": len(statuses),
        "statuses": statuses,
        "acked": acked,
    }
    sim.push_log.append(result)
    return result


async def _push_loop(sim: JntSimulator, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)  # the demo's wall-clock cadence, not simulated time
        await push_now(sim)


# --------------------------------------------------------------------------------------------
# The app


def create_app(clock: Clock, *, options: Mapping[str, Any] | None = None) -> web.Application:
    unknown = set(options or {}) - set(DEFAULT_OPTIONS)
    if unknown:
        raise ValueError(f"unknown simulator option(s): {', '.join(sorted(unknown))}")
    merged = {**DEFAULT_OPTIONS, **(options or {})}
    faults = FaultTable(merged["faults"] or None)
    variations = Variations.from_spec(merged["variations"])
    state = SimState(clock=clock, faults=faults, variations=variations, seed=str(merged["seed"]))
    cities: Mapping[str, str] = merged["city_codes"]
    regency_by_city: dict[str, str] = {}
    for regency, city in cities.items():
        regency_by_city.setdefault(city, regency)
    sim = JntSimulator(state=state, options=merged, regency_by_city=regency_by_city)

    app = web.Application()
    app[SIM_KEY] = sim

    @web.middleware
    async def remember_origin(request: web.Request, handler: Any) -> web.StreamResponse:
        sim.base_url = str(request.url.origin())
        response: web.StreamResponse = await handler(request)
        return response

    app.middlewares.append(remember_origin)

    def faulted(endpoint: str, handler: Any) -> Any:
        async def serve(request: web.Request) -> web.StreamResponse:
            return await run_with_faults(state, endpoint, lambda: handler(sim, request))

        return serve

    async def push_route(request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            raise web.HTTPBadRequest(text="body must be JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text='expected {"duplicate": bool, "reorder": bool}')
        result = await push_now(
            sim, duplicate=bool(body.get("duplicate")), reorder=bool(body.get("reorder"))
        )
        return web.json_response(result)

    app.router.add_post(CREATE_PATH, faulted("create", _create))
    app.router.add_post(CANCEL_PATH, faulted("cancel", _cancel))
    for path in TRACK_PATHS:
        app.router.add_post(path, faulted("track", _track))
    app.router.add_post(FIND_PATH, faulted("find", _find))
    app.router.add_get("/pod/{waybill}/{kind}.png", faulted("pod", _pod))
    app.router.add_post("/_sim/push", push_route)
    install(app, state)

    async def pusher(_: web.Application) -> AsyncIterator[None]:
        sim.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10, connect=5, sock_connect=5, sock_read=10)
        )
        interval = merged["push_interval"]
        task = asyncio.create_task(_push_loop(sim, float(interval))) if interval else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await sim.session.close()

    app.cleanup_ctx.append(pusher)
    return app
