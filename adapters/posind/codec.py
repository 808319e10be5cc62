"""Pos Indonesia wire bodies: build AddPostingDoc, parse its answer and getTrackAndTrace. Pure.

Shapes follow couriers.md §2 (integrators' code [C-3p]); where nothing public exists the choice is
ours and marked [I]. Every parser validates the body against its JSON Schema first and raises
:class:`~adapters.base.ResponseInvalid` naming the JSON path of the first bad field; the payload
itself never goes into the message (it carries names, phones and addresses).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from functools import cache
from typing import Any

import schemas
from adapters import base
from adapters.base import (
    Booking,
    CourierRejected,
    Party,
    ResponseInvalid,
    ShipmentOrder,
    TrackingEvent,
)
from adapters.posind.statuses import SELESAI_ANTAR, status_for
from core.clock import from_wib_naive
from core.status import Status

COURIER = "posind"

# --------------------------------------------------------------------------------------------
# AddPostingDoc request

# The envelope a passport travels in, in centimetres (a padded C5 envelope) [I].
ENVELOPE_CM = (25, 18, 1)


def local_phone(e164: str) -> str:
    """Pos forms take the domestic form: "+6281234567890" → "081234567890" [I]."""
    digits = re.sub(r"[^\d+]", "", e164)
    if digits.startswith("+62"):
        return "0" + digits[3:]
    return digits.lstrip("+")


def _address(addresstype: str, customertype: str, party: Party) -> dict[str, Any]:
    a = party.address
    return {
        "addresstype": addresstype,
        "customertype": customertype,
        "name": party.name,
        "phone": local_phone(party.phone),
        "email": party.email,
        "address": f"{a.street}, {a.village}" if a.village else a.street,
        "subdistrict": a.district,
        "city": a.regency,
        "province": a.province,
        "zipcode": a.postal_code,
        "country": "Indonesia",
        "geolat": "",
        "geolang": "",  # sic: Pos spells it so
        "description": a.note,
    }


def grams(weight_kg: Decimal) -> int:
    """Pos weighs in whole grams, rounded up, at least 1 [I: getFee takes grams]."""
    return max(1, int((weight_kg * 1000).to_integral_value(rounding=ROUND_CEILING)))


def build_posting(
    order: ShipmentOrder, *, userid: int, memberid: str, itemtypeid: int = 1
) -> dict[str, Any]:
    """The full AddPostingDoc body (couriers.md §2), every list and spelling as Pos has it.

    The office is both ``senderlocation`` and ``pickuplocation`` (Pos collects from the counter);
    the applicant is both ``receiverlocation`` and ``deliverylocation``. ``customertype`` "2" for
    the office (an institution) and "1" for the applicant (a person) is our reading [I]. Fees are
    0: the contract bills monthly, not per posting [I].
    """
    length, width, height = ENVELOPE_CM
    value = int(order.declared_value)
    return {
        "userid": int(userid),
        "memberid": memberid,
        "orderid": order.reference,
        "addresses": [
            _address("senderlocation", "2", order.sender),
            _address("receiverlocation", "1", order.receiver),
            _address("pickuplocation", "2", order.sender),
            _address("deliverylocation", "1", order.receiver),
        ],
        "itemdetils": [  # sic
            {
                "hscode": "",
                "origincountry": "ID",
                "description": order.description,
                "quantity": 1,
                "value": value,
            }
        ],
        "itemproperties": {
            "itemtypeid": int(itemtypeid),
            "productid": order.service,
            "valuegoods": value,
            "weight": grams(order.weight_kg),
            "length": length,
            "width": width,
            "height": height,
            "codvalue": 0,
            "pin": "",
            "itemdesc": order.description,
        },
        "paymentvalues": [{"name": "fee", "value": 0}, {"name": "insurance", "value": 0}],
        "taxes": [{"name": "fee", "value": 0}, {"name": "insurance", "value": 0}],
        "services": [
            {"name": "insurance", "value": 1 if order.insured else 0},
            {"name": "genreceipt", "value": 1},
            {"name": "printreceipt", "value": 0},
            {"name": "cod", "value": 0},
            {"name": "pickup", "value": 1},
            {"name": "delivery", "value": 1},
            {"name": "notiftosender", "value": 0},
            {"name": "notiftoreceiver", "value": 1},
        ],
    }


# --------------------------------------------------------------------------------------------
# Validation at the boundary


def validate(schema: str, body: Any, what: str) -> None:
    """Raise ResponseInvalid at the first bad path; the message names the rule, not the value."""
    errors = schemas.check(f"couriers/posind/{schema}", body)
    if errors:
        raise ResponseInvalid(COURIER, f"unexpected {what} shape", errors[0].path)


# --------------------------------------------------------------------------------------------
# AddPostingDoc response

# The answer's shape was not found in any public source. The field namings we accept are the
# entries of schemas/couriers/posind/posting_response.json (each with its "x-fields"): ours [I]
#   {"responseCode": "000", "responseDesc": "Sukses", "orderid": "...", "barcode": "P..."}
# and the naming a real answer used, {"respcode": …, "respmsg": …}. Success is code "000"; a
# reused orderid is "102"; any other code is a refusal; any other shape is not understood.
POSTING_SCHEMA = "couriers/posind/posting_response"
SUCCESS_CODE = "000"
DUPLICATE_CODE = "102"
_DUPLICATE_TEXT = re.compile(
    r"(order\s*id|orderid).*(sudah|terdaftar|already|duplicate|tidak boleh sama)", re.IGNORECASE
)


class AnswerNotUnderstood(ResponseInvalid):
    """The courier answered a create in a shape we do not know: the order may exist.

    ``raw`` keeps the answer with every value that could carry personal data masked
    (:func:`redact_answer`), for the item that asks a person to check the portal.
    """

    def __init__(self, courier: str, reference: str, path: str, raw: Any) -> None:
        super().__init__(
            courier,
            "the courier's answer was not understood; the order may exist: check reference "
            f"{reference} in the portal",
            path,
        )
        self.reference = reference
        self.raw = redact_answer(raw)


@dataclass(frozen=True, slots=True)
class PostingNaming:
    """Which field of an AddPostingDoc answer holds what, in one accepted naming."""

    code: str
    message: str
    barcode: str
    reference: str


@cache
def posting_namings() -> tuple[PostingNaming, ...]:
    """The namings the schema accepts, in its order (the schema is the one table)."""
    return tuple(
        PostingNaming(**entry["x-fields"]) for entry in schemas.load(POSTING_SCHEMA)["anyOf"]
    )


# The answer's redaction is the one every courier shares (adapters/base.py).
MASK = base.MASK
redact_answer = base.redact_answer


def parse_posting(body: Any, reference: str) -> Booking:
    """Booking from an AddPostingDoc answer, in any naming the schema accepts.

    Raises OutcomeUnknown for a duplicate orderid (the order may already exist: reconcile, never
    book again under a new reference), CourierRejected for any other refusal, and
    :class:`AnswerNotUnderstood` for a shape we do not know or a success without a barcode.
    """
    errors = schemas.check(POSTING_SCHEMA, body)
    naming = next(
        (n for n in posting_namings() if isinstance(body, Mapping) and n.code in body), None
    )
    if errors or naming is None:
        raise AnswerNotUnderstood(COURIER, reference, errors[0].path if errors else "$", body)
    code = str(body[naming.code]).strip()
    desc = str(body.get(naming.message) or "")
    if code == DUPLICATE_CODE or _DUPLICATE_TEXT.search(desc):
        raise base.DuplicateReference(COURIER, f"orderid already used (code {code})")
    if code != SUCCESS_CODE:
        raise CourierRejected(COURIER, code, desc or "no reason given")
    barcode = str(body.get(naming.barcode) or "").strip()
    if not barcode:
        raise AnswerNotUnderstood(COURIER, reference, f"$.{naming.barcode}", body)
    echoed = body.get(naming.reference)
    if echoed not in (None, "", reference):
        raise ResponseInvalid(COURIER, "answer is for another orderid", f"$.{naming.reference}")
    return Booking(reference=reference, waybill=barcode, raw=dict(body))


# --------------------------------------------------------------------------------------------
# getTrackAndTrace response

# Relations couriers write in PENERIMA / KETERANGAN, upper-cased; used only to tell a relation
# from a name when the text carries one of them alone.
KNOWN_RELATIONS = frozenset(
    {
        "YBS",
        "YANG BERSANGKUTAN",
        "ISTRI",
        "SUAMI",
        "ORANG TUA",
        "AYAH",
        "IBU",
        "ANAK",
        "KAKAK",
        "ADIK",
        "SAUDARA",
        "KELUARGA",
        "ORANG SERUMAH",
        "SERUMAH",
        "TETANGGA",
        "SATPAM",
        "SECURITY",
        "RT SETEMPAT",
        "PEMBANTU",
        "ART",
        "RESEPSIONIS",
        "KANTOR",
    }
)

_RECEIVER_FIELD = re.compile(r"PENERIMA\s*/\s*KETERANGAN\s*:\s*([^;]*)", re.IGNORECASE)
_REASON_FIELD = re.compile(r"KETERANGAN\s*:\s*([^;]*)", re.IGNORECASE)
# a name, then the relation in parentheses, then whatever the counter typed after it
_PARENS = re.compile(r"^(?P<name>[^()]*?)\s*\((?P<rel>[^()]*)\)")


def _is_relation(text: str) -> bool:
    return " ".join(text.split()).upper() in KNOWN_RELATIONS


def parse_receiver(value: str) -> tuple[str, str]:
    """``PENERIMA / KETERANGAN`` text → (receiver name, relation), either may be "".

    "SITI RAHAYU (ISTRI)" and "SITI RAHAYU (ISTRI) TTD DIGITAL" → both; "Orang Serumah" →
    relation only; "BUDI / YBS" or "YBS - BUDI" → both; anything else is taken as a name.
    """
    text = " ".join(value.split())
    if not text:
        return "", ""
    if _is_relation(text):
        return "", text
    match = _PARENS.match(text)
    if match:
        return match["name"].strip(), match["rel"].strip()
    for sep in (" / ", " - ", "/", "-"):
        if sep in text:
            left, right = (part.strip() for part in text.split(sep, 1))
            if _is_relation(right):
                return left, right
            if _is_relation(left):
                return right, left
    return text, ""


def split_selesai_antar(description: str) -> tuple[Status | None, str, str, str]:
    """SELESAI ANTAR → (status, receiver, relation, reason).

    "Diterima … PENERIMA / KETERANGAN : x" is delivered; "Antar Ulang … KETERANGAN : reason" is
    a failed attempt. Anything else (both, neither, "tidak diterima", "ditolak") is None:
    unmapped for a person to read, never guessed.
    """
    upper = description.upper()
    failed = "ANTAR ULANG" in upper
    refused = "TIDAK DITERIMA" in upper or "DITOLAK" in upper
    delivered = "DITERIMA" in upper or _RECEIVER_FIELD.search(description) is not None
    if refused:
        delivered = False
    if delivered and not failed:
        match = _RECEIVER_FIELD.search(description)
        receiver, relation = parse_receiver(match.group(1)) if match else ("", "")
        return Status.DELIVERED, receiver, relation, ""
    if failed and not delivered:
        reason_match = _REASON_FIELD.search(description)
        reason = " ".join(reason_match.group(1).split()) if reason_match else ""
        return Status.DELIVERY_FAILED, "", "", reason
    return None, "", "", ""


def parse_posting_loket(description: str) -> dict[str, str]:
    """The service and receiver postcode from POSTING LOKET's semicolon-separated description.

    Fields are ``LABEL : value`` or bare values; the receiver postcode is the last bare 5-digit
    field (about the 12th). Names, addresses and phones are not extracted: we do not need them.
    """
    out: dict[str, str] = {}
    fields = [f.strip() for f in description.split(";")]
    for f in fields:
        label, sep, value = f.partition(":")
        if sep and label.strip().upper() == "LAYANAN":
            out["service"] = value.strip()
    postcodes = [f for f in fields if re.fullmatch(r"\d{5}", f)]
    if postcodes:
        out["receiver_postcode"] = postcodes[-1]
    return out


def event_time(text: str, path: str) -> datetime:
    """``eventDate`` is a WIB wall-clock string ("2026-11-02 10:19:00", maybe ".0" or "T")."""
    cleaned = text.strip().replace("T", " ").split(".")[0]
    try:
        return from_wib_naive(cleaned)
    except ValueError:
        raise ResponseInvalid(COURIER, "eventDate is not YYYY-MM-DD HH:MM:SS", path) from None


def _events(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    rs = body.get("rs_tnt")
    if rs is None:  # Pos's way of saying "no such barcode" (or nothing scanned yet)
        return []
    r = rs.get("r_tnt")
    if r is None:
        return []
    return [r] if isinstance(r, Mapping) else list(r)  # one event comes as a bare object


def parse_track(body: Any, waybill: str) -> list[TrackingEvent]:
    """Events for one barcode, oldest first. ``rs_tnt: null`` → [] (unknown barcode)."""
    validate("track_response", body, "getTrackAndTrace response")
    raw_events = _events(body)
    is_list = isinstance((body.get("rs_tnt") or {}).get("r_tnt"), list)
    out: list[TrackingEvent] = []
    for index, raw in enumerate(raw_events):
        path = f"$.rs_tnt.r_tnt[{index}]" if is_list else "$.rs_tnt.r_tnt"
        name = " ".join(str(raw["eventName"]).split()).upper()
        description = str(raw.get("description") or "")
        receiver = relation = reason = ""
        if name == SELESAI_ANTAR:
            status, receiver, relation, reason = split_selesai_antar(description)
        else:
            status = status_for(name)
        out.append(
            TrackingEvent(
                waybill=waybill,
                occurred_at=event_time(str(raw["eventDate"]), f"{path}.eventDate"),
                raw_code=name,
                raw_text=description,
                status=status,
                location=str(raw.get("officeName") or raw.get("officeCode") or ""),
                receiver_name=receiver,
                relation=relation,
                reason=reason,
                raw=dict(raw),
            )
        )
    # Pos lists newest or oldest first depending on the client seen; order by time, stably
    out.sort(key=lambda e: e.occurred_at)
    return out


# --------------------------------------------------------------------------------------------
# Token response


def parse_token(body: Any) -> tuple[str, float | None]:
    """(access_token, expires_in seconds or None) from ``POST /token``."""
    validate("token_response", body, "token response")
    expires = body.get("expires_in")
    return str(body["access_token"]), (float(expires) if expires is not None else None)
