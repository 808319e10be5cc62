"""J&T Express Indonesia wire format, as pure functions: values in, values out, no I/O.

Requests (legacy e-commerce API, couriers.md §1A):

* create / cancel: form fields ``data_param`` (JSON ``{"detail": [ {...} ]}``) and ``data_sign`` =
  base64(md5 *hex* digest of (json + key)). The JSON is encoded once, here, and the same text is
  both signed and sent: UTF-8 as is (``ensure_ascii=False``), no slash escaping (Python never
  escapes ``/``), compact separators. Every value is a string; field lengths are enforced
  before sending (:data:`MAX_LENGTH`) with a :class:`CourierRejected` naming the field.
* track: JSON ``{"awb", "eccompanyid"}`` with HTTP Basic ``eccompanyid:tracking_password``;
  one AWB per call.
* find: the legacy API documents no lookup by ``orderid``; this uses the JMS-style
  ``/api/order/getOrders`` (``bizContent`` ``{"customerCode", "command": 1, "serialNumber":
  [orderid]}``, headers ``apiAccount``/``digest``/``timestamp``). Production must confirm that
  J&T Indonesia serves it under the contract.

Responses are checked against ``schemas/couriers/jnt/*`` at the boundary: a shape we do not
know raises :class:`ResponseInvalid` naming the JSON path (never the payload). Business errors
arrive inside HTTP 200 (``success`` true, ``detail[0].status == "Error"``) and are classified
here: a duplicate ``orderid`` is :class:`DuplicateReference` (J&T refuses a reused orderid, so
the order exists: look it up, or ask a person to read its waybill),
"Status pesanan adalah : GOT" is ``CourierRejected(code="picked_up")``, signature or username
trouble is :class:`AuthFailed`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_UP, Decimal
from typing import Any

import schemas
from adapters.base import (
    Artefact,
    AuthFailed,
    Booking,
    CourierError,
    CourierRejected,
    DuplicateReference,
    Party,
    ResponseInvalid,
    ShipmentOrder,
    TrackingEvent,
)
from adapters.jnt.statuses import PROBLEM_CODES, jms_status, legacy_status
from core.clock import WIB, from_wib_naive
from core.status import Status

CODE = "jnt"
WALL_FORMAT = "%Y-%m-%d %H:%M:%S"  # J&T wall-clock strings: WIB, no offset (couriers.md §5.7)
AWB_PATTERN = re.compile(r"JO\d{10}")

# Field length limits of the create and cancel APIs (couriers.md §1A).
MAX_LENGTH: Mapping[str, int] = {
    "orderid": 20,
    "shipper_name": 30,
    "shipper_contact": 30,
    "shipper_phone": 15,
    "shipper_addr": 200,
    "receiver_name": 30,
    "receiver_phone": 15,
    "receiver_addr": 200,
    "receiver_zip": 5,
    "goodsdesc": 40,
    "item_name": 50,
    "remark": 30,
}
_GOODSDESC = re.compile(r"[A-Za-z0-9 ]*")  # "no special characters"
_AUTH_WORDS = ("signature", "tanda tangan", "data_sign", "username", "api key", "api_key")
DUPLICATE_ORDERID = "orderid tidak boleh sama"
STATUS_IS = "status pesanan adalah"
JMS_AUTH_CODES = frozenset({"145003010", "145003012", "145003030", "145003051", "145003052"})


@dataclass(frozen=True)
class JntConfig:
    """The settings the wire needs (see schemas/couriers/jnt/settings.json)."""

    username: str
    api_key: str
    order_key: str  # signs create
    cancel_key: str  # signs cancel
    eccompanyid: str
    tracking_password: str
    origin_code: str  # J&T city code of the office, e.g. "BLT"
    city_codes: Mapping[str, str]  # our regency code "35.73" -> J&T city code
    area_codes: Mapping[str, str] = field(default_factory=dict)  # district (or regency) -> area
    #: the JMS getOrders lookup is switched on for this account (its own setting: push
    #: credentials do not imply it; J&T must confirm it under the contract)
    lookup: bool = False
    customer_code: str = ""  # JMS getOrders
    api_account: str = ""  # JMS getOrders and push
    private_key: str = ""
    sign_variant: str = "hex"  # "raw": md5 raw bytes, for a tenant that wants it
    servicetype: str = "1"  # 1 = pickup from the office, 6 = drop-off
    pickup_window_hours: float = 8

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> JntConfig:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in settings.items() if k in known})


# --------------------------------------------------------------------------------------------
# Encoding and signing


def encode_json(value: Any) -> str:
    """The one JSON encoding: what is signed is exactly what is sent."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def sign(text: str, key: str, variant: str = "hex") -> str:
    """``data_sign``: base64 of the md5 of (text + key); hex digest by default (couriers.md §1A)."""
    md5 = hashlib.md5((text + key).encode("utf-8"), usedforsecurity=False)
    digest = md5.hexdigest().encode("ascii") if variant == "hex" else md5.digest()
    return base64.b64encode(digest).decode("ascii")


def jms_digest(biz_content: str, private_key: str) -> str:
    """JMS header ``digest``: base64 of the *raw* md5 of (bizContent + privateKey)."""
    raw = hashlib.md5((biz_content + private_key).encode("utf-8"), usedforsecurity=False)
    return base64.b64encode(raw.digest()).decode("ascii")


@dataclass(frozen=True)
class SignedForm:
    data_param: str
    data_sign: str

    def form(self) -> dict[str, str]:
        return {"data_param": self.data_param, "data_sign": self.data_sign}


@dataclass(frozen=True)
class JmsRequest:
    headers: dict[str, str]
    form: dict[str, str]


@dataclass(frozen=True)
class TrackRequest:
    body: dict[str, str]
    user: str
    password: str


# --------------------------------------------------------------------------------------------
# Building requests


def _wall(when: datetime) -> str:
    return when.astimezone(WIB).strftime(WALL_FORMAT)


def _address(party: Party) -> str:
    a = party.address
    text = ", ".join(p for p in (a.street, a.village, a.district, a.regency, a.province) if p)
    return f"{text} ({a.note})" if a.note else text


def _weight(kg: Decimal) -> str:
    if kg <= 0:
        raise CourierRejected(CODE, "field_invalid", "weight: must be positive")
    # two decimals at most; round up so the declared weight never undercuts the real one
    return format(kg.quantize(Decimal("0.01"), rounding=ROUND_UP).normalize(), "f")


def check_lengths(values: Mapping[str, str]) -> None:
    """Every limited field within its limit, else CourierRejected naming the field (not value)."""
    for name, limit in MAX_LENGTH.items():
        value = values.get(name)
        if value is not None and len(value) > limit:
            raise CourierRejected(
                CODE, "field_too_long", f"{name}: {len(value)} characters, at most {limit}"
            )


def sender_values(sender: Party) -> dict[str, str]:
    """The shipper fields of an order item, exactly as :func:`create_values` sends them."""
    return {
        "shipper_name": sender.name,
        "shipper_contact": sender.name,
        "shipper_phone": sender.phone,
        "shipper_addr": _address(sender),
    }


def sender_problems(sender: Party) -> list[tuple[str, str]]:
    """Every shipper field J&T would refuse (couriers.md §1A lengths; a phone and an address
    are required), so an office is refused when it is configured, not at its first booking."""
    out: list[tuple[str, str]] = []
    for name, value in sender_values(sender).items():
        limit = MAX_LENGTH[name]
        if not value.strip():
            out.append((name, "required"))
        elif len(value) > limit:
            out.append((name, f"{len(value)} characters, at most {limit}"))
    return out


def create_values(order: ShipmentOrder, config: JntConfig, now: datetime) -> dict[str, str]:
    """One order item of ``data_param.detail``; all values strings, limits checked."""
    dest = order.receiver.address
    destination = config.city_codes.get(dest.regency_code)
    if not destination:
        raise CourierRejected(
            CODE, "unmapped_destination", f"no J&T city code for regency {dest.regency_code}"
        )
    area = config.area_codes.get(dest.district_code) or config.area_codes.get(dest.regency_code)
    if not area:
        raise CourierRejected(
            CODE, "unmapped_area", f"no J&T area code for district {dest.district_code}"
        )
    if not _GOODSDESC.fullmatch(order.description):
        raise CourierRejected(CODE, "field_invalid", "goodsdesc: letters, digits, spaces only")
    start = order.pickup_start or now
    end = order.pickup_end or start + timedelta(hours=config.pickup_window_hours)
    zip_code = dest.postal_code if re.fullmatch(r"\d{5}", dest.postal_code) else "00000"
    values = {
        "username": config.username,
        "api_key": config.api_key,
        "orderid": order.reference,
        **sender_values(order.sender),
        "origin_code": config.origin_code,
        "receiver_name": order.receiver.name,
        "receiver_phone": order.receiver.phone,
        "receiver_addr": _address(order.receiver),
        "receiver_zip": zip_code,
        "destination_code": destination,
        "receiver_area": area,
        "qty": "1",
        "weight": _weight(order.weight_kg),
        "goodsdesc": order.description,
        "item_name": order.description,
        "goodsvalue": str(order.declared_value),
        "insurance": str(order.declared_value) if order.insured else "0",
        "cod": "0",
        "servicetype": config.servicetype,
        "expresstype": order.service,
        "orderdate": _wall(now),
        "sendstarttime": _wall(start),
        "sendendtime": _wall(end),
    }
    check_lengths(values)
    return values


def build_create(order: ShipmentOrder, config: JntConfig, now: datetime) -> SignedForm:
    text = encode_json({"detail": [create_values(order, config, now)]})
    return SignedForm(text, sign(text, config.order_key, config.sign_variant))


def build_cancel(reference: str, reason: str, config: JntConfig) -> SignedForm:
    values = {
        "username": config.username,
        "api_key": config.api_key,
        "orderid": reference,
        "remark": reason[: MAX_LENGTH["remark"]],  # free text of ours: cut, as integrators do
    }
    check_lengths(values)
    text = encode_json({"detail": [values]})
    return SignedForm(text, sign(text, config.cancel_key, config.sign_variant))


def build_track(awb: str, config: JntConfig) -> TrackRequest:
    return TrackRequest(
        body={"awb": awb, "eccompanyid": config.eccompanyid},
        user=config.eccompanyid,
        password=config.tracking_password,
    )


def build_find(reference: str, config: JntConfig, now: datetime) -> JmsRequest:
    biz = encode_json(
        {"customerCode": config.customer_code, "command": 1, "serialNumber": [reference]}
    )
    headers = {
        "apiAccount": config.api_account,
        "digest": jms_digest(biz, config.private_key),
        "timestamp": str(int(now.timestamp() * 1000)),
    }
    return JmsRequest(headers=headers, form={"bizContent": biz})


# --------------------------------------------------------------------------------------------
# Parsing responses


def check_shape(schema: str, body: Any) -> None:
    """ResponseInvalid naming the first bad path; the message never repeats the payload."""
    errors = schemas.check(f"couriers/jnt/{schema}", body)
    if errors:
        raise ResponseInvalid(CODE, f"unexpected {schema} shape", errors[0].path)


def is_true(flag: Any) -> bool:
    """J&T's ``success`` is a JSON boolean or the string "true" (couriers.md §1A)."""
    return flag is True or (isinstance(flag, str) and flag.strip().casefold() == "true")


def _short(text: str) -> str:
    return " ".join(text.split())[:200]


def business_error(reason: str, operation: str) -> CourierError:
    """What a J&T refusal means for us, from its (Indonesian) wording."""
    folded = reason.casefold()
    if DUPLICATE_ORDERID in folded:
        return DuplicateReference(CODE, f"{operation}: orderid already used; the order exists")
    if any(word in folded for word in _AUTH_WORDS):
        return AuthFailed(CODE, f"{operation}: credentials or signature refused")
    if STATUS_IS in folded:
        state = folded.rsplit(":", 1)[-1].strip().upper()
        code = "picked_up" if state == "GOT" else f"status_{state.lower() or 'unknown'}"
        return CourierRejected(CODE, code, _short(reason))
    return CourierRejected(CODE, "rejected", _short(reason))


def _first_item(body: Mapping[str, Any], reference: str, operation: str) -> Mapping[str, Any]:
    if not is_true(body["success"]):
        items = body.get("detail") or [{}]
        raise business_error(f"{body.get('desc', '')} {items[0].get('reason', '')}", operation)
    if not body.get("detail"):
        raise ResponseInvalid(CODE, f"{operation}: no order item", "$.detail")
    item: Mapping[str, Any] = body["detail"][0]
    status = str(item.get("status", "")).casefold()
    if status == "error":
        raise business_error(str(item.get("reason", "")), operation)
    if status != "sukses":
        # neither success nor a known error: never guessed to be a refusal
        raise ResponseInvalid(CODE, f"{operation}: unknown item status", "$.detail[0].status")
    if item.get("orderid") not in (None, reference):
        raise ResponseInvalid(CODE, f"{operation}: orderid not echoed", "$.detail[0].orderid")
    return item


def parse_create(body: Any, reference: str) -> Booking:
    check_shape("create_response", body)
    item = _first_item(body, reference, "create")
    awb = str(item.get("awb_no") or "")
    if not awb:
        raise ResponseInvalid(CODE, "create: no AWB", "$.detail[0].awb_no")
    raw = {k: item[k] for k in ("awb_no", "orderid", "desCode", "etd") if k in item}
    return Booking(reference=reference, waybill=awb, courier_reference=awb, raw=raw)


def parse_cancel(body: Any, reference: str) -> None:
    """Done, or already cancelled (cancel is idempotent for us); anything else raises."""
    check_shape("cancel_response", body)
    try:
        _first_item(body, reference, "cancel")
    except CourierRejected as refused:
        if refused.code in ("status_cancel", "status_cancelled", "status_batal"):
            return
        raise


def parse_find(body: Any, reference: str) -> Booking | None:
    check_shape("get_orders_response", body)
    code = str(body["code"])
    if code in JMS_AUTH_CODES:
        raise AuthFailed(CODE, f"find: refused ({code})")
    if code != "1":
        raise CourierRejected(CODE, code, _short(str(body.get("msg", ""))))
    for item in body.get("data") or []:
        if item.get("txlogisticId") == reference and item.get("billCode"):
            raw = {k: item[k] for k in ("billCode", "txlogisticId", "orderStatus") if k in item}
            waybill = str(item["billCode"])
            return Booking(reference=reference, waybill=waybill, courier_reference=waybill, raw=raw)
    return None


_RECEIVED_BY = re.compile(
    r"(?:diterima\s+oleh|received\s+by|signed\s+by|ditandatangani\s+oleh)\s*[:：]?\s*",
    re.IGNORECASE,
)
_BRACKETS = {"【": "】", "[": "]", "［": "］", "〔": "〕", "「": "」"}
_PARENS = {"(": ")", "（": "）"}
# What may separate the name from a relation when there is no bracket or parenthesis
_SEPARATORS = re.compile(r"\s+[-–—|/]\s+|[,，;；:：。]")
_LEADING_SEPARATOR = re.compile(r"[-–—|/,，;；:：。]+\s*")


def _closed(text: str, pairs: Mapping[str, str]) -> tuple[str, str] | None:
    """(inside, after) when ``text`` opens with one of ``pairs``; None otherwise."""
    closing = pairs.get(text[:1])
    if closing is None:
        return None
    inside, found, after = text[1:].partition(closing)
    return (inside, after) if found else (inside, "")


def _relation_after(after: str) -> str:
    """The relation in what follows the name: "(YBS) Terima kasih" → "YBS", " - YBS - POD" →
    "YBS", "，Keluarga。" → "Keluarga". Plain words without a separator (a thank-you) are not a
    relation."""
    text = after.strip()
    paren = _closed(text, _PARENS)
    if paren is not None:
        return " ".join(paren[0].split())
    lead = _LEADING_SEPARATOR.match(text)
    if not lead:
        return ""
    first = _SEPARATORS.split(text[lead.end() :], maxsplit=1)[0]
    return " ".join(first.strip(" .").split())


def parse_receiver(text: str) -> tuple[str, str]:
    """(name, relation) from J&T's delivered text, tolerant of whatever follows the name.

    "Paket telah diterima oleh Budi Santoso (ISTRI)" → ("Budi Santoso", "ISTRI");
    "Received by【NAME】(YBS)" and "Received by【NAME】(YBS) Terima kasih…" → ("NAME", "YBS");
    "Received by【NAME】 - Keluarga - POD" → ("NAME", "Keluarga"). J&T writes the relation as
    free text (couriers.md §4); either may be empty. Structured fields (``receiver``, ``note``)
    win over this: see :func:`history_event`.
    """
    found = _RECEIVED_BY.search(text)
    if not found:
        return "", ""
    rest = text[found.end() :].strip()
    bracket = _closed(rest, _BRACKETS)
    if bracket is not None:
        inside, after = bracket  # the bracket delimits the name: "SITI / RAHAYU" is one
        name, relation = _name_and_relation(inside, separated=False)
        return name, relation or _relation_after(after)
    return _name_and_relation(rest, separated=True)


def _name_and_relation(text: str, *, separated: bool) -> tuple[str, str]:
    """The name and a relation in parentheses after it ("Budi (ISTRI) more"); when the name is
    not delimited by a bracket (``separated``), also after a separator ("Budi - YBS")."""
    cut = min((i for i in (text.find("("), text.find("（")) if i >= 0), default=-1)
    if cut >= 0:
        return " ".join(text[:cut].split()), _relation_after(text[cut:])
    if not separated:
        return " ".join(text.split()), ""
    parts = _SEPARATORS.split(text, maxsplit=1)
    name = " ".join(parts[0].split())
    if len(parts) == 1:
        return name, ""
    return name, " ".join(_SEPARATORS.split(parts[1], maxsplit=1)[0].strip(" .").split())


def pod_artefacts(item: Mapping[str, Any]) -> tuple[Artefact, ...]:
    """Photo and signature links (JMS field names; signed links that expire: fetch at once)."""
    found: list[Artefact] = []
    photos = str(item.get("sigPicUrl") or "")
    for url in filter(None, (u.strip() for u in photos.split(","))):
        found.append(Artefact(kind="photo", url=url))
    signature = str(item.get("electronicSignaturePicUrl") or "").strip()
    if signature:
        found.append(Artefact(kind="signature", url=signature))
    return tuple(found)


def _when(text: str, path: str) -> datetime:
    try:
        return from_wib_naive(text.strip(), WALL_FORMAT)
    except ValueError:
        raise ResponseInvalid(CODE, "not a J&T wall-clock time", path) from None


def parse_track(body: Any, awb: str) -> list[TrackingEvent]:
    """Events of one AWB, oldest first. An unknown AWB gives [] (J&T's error_id 404)."""
    if isinstance(body, Mapping) and "error_id" in body:
        check_shape("track_error", body)
        error_id = str(body["error_id"])
        if error_id == "404":
            return []
        if error_id in ("401", "403"):
            raise AuthFailed(CODE, f"track: refused ({error_id})")
        raise CourierRejected(CODE, f"track_{error_id}", "tracking refused")
    check_shape("track_response", body)
    if body["awb"] != awb:
        raise ResponseInvalid(CODE, "track: answered for another AWB", "$.awb")
    events = [history_event(awb, item, f"$.history[{i}]") for i, item in enumerate(body["history"])]
    return sorted(events, key=lambda e: e.occurred_at)


def _field(item: Mapping[str, Any], name: str) -> str:
    return " ".join(str(item.get(name) or "").split())


def history_event(awb: str, item: Mapping[str, Any], path: str) -> TrackingEvent:
    """One legacy ``history[]`` item. Status by ``status_code`` first, refined by the words of
    ``status`` and ``note``; on delivery the structured ``receiver`` and ``note`` win over what
    the text says (the note carries the relation: "YBS", "Keluarga", "Orang Serumah")."""
    code, text = str(item["status_code"]), str(item["status"])
    note = _field(item, "note")
    status = legacy_status(code, text, note)
    receiver, relation, reason = "", "", ""
    if status is Status.DELIVERED:
        receiver, relation = parse_receiver(text)
        receiver = _field(item, "receiver") or receiver
        relation = note or relation
    elif status in (Status.DELIVERY_FAILED, Status.RETURNING, Status.LOST) or (
        status is None and code in PROBLEM_CODES
    ):
        reason = note or " ".join(text.split())
    return TrackingEvent(
        waybill=awb,
        occurred_at=_when(str(item["date_time"]), f"{path}.date_time"),
        raw_code=code,
        raw_text=text,
        status=status,
        location=str(item.get("city_name") or item.get("storeName") or ""),
        receiver_name=receiver,
        relation=relation,
        artefacts=pod_artefacts(item) if status is Status.DELIVERED else (),
        reason=reason,
        raw=dict(item),
    )


def scan_event(awb: str, scan: Mapping[str, Any], path: str) -> TrackingEvent:
    """One JMS ``details[]`` scan (the push) as an event: status by ``scanTypeCode`` first,
    refined by ``desc`` and the problem fields; receiver and relation from ``desc``."""
    code, text = str(scan["scanTypeCode"]), str(scan.get("desc") or scan.get("scanTypeName") or "")
    problem = _field(scan, "probleDescription") or _field(scan, "problemType")
    status = jms_status(code, text, _field(scan, "problemType"), problem)
    receiver, relation, reason = "", "", ""
    if status is Status.DELIVERED:
        receiver, relation = parse_receiver(text)
    if status in (Status.DELIVERY_FAILED, Status.RETURNING, Status.LOST) or (
        status is None and code in PROBLEM_CODES
    ):
        reason = problem or " ".join(text.split())
    return TrackingEvent(
        waybill=awb,
        occurred_at=_when(str(scan["scanTime"]), f"{path}.scanTime"),
        raw_code=code,
        raw_text=text,
        status=status,
        location=str(scan.get("scanNetworkName") or scan.get("scanNetworkCity") or ""),
        receiver_name=receiver,
        relation=relation,
        artefacts=pod_artefacts(scan) if status is Status.DELIVERED else (),
        reason=reason,
        raw=dict(scan),
    )


def wall_time(when: datetime) -> str:
    """Our aware time as J&T writes it (simulator and tests)."""
    return _wall(when)


def split_batch(waybills: Sequence[str]) -> list[str]:
    """Distinct waybills in the order given (J&T tracks one per call, couriers.md §5.5)."""
    return list(dict.fromkeys(waybills))
