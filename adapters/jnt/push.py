"""J&T push (JMS style): verify, parse and answer, as pure functions.

The legacy J&T Indonesia API publishes no push; J&T's JMS platform does (couriers.md §1B), and a
contract may switch it on. This is the wire format the service accepts and the simulator sends:

Request (J&T → us)::

    POST /webhooks/jnt
    Content-Type: application/x-www-form-urlencoded
    apiAccount: <our api account>
    digest:     base64( md5_raw( bizContent + privateKey ) )    # raw 16 bytes, not hex
    timestamp:  <epoch milliseconds>

    bizContent=<url-encoded JSON array>

    bizContent = [                              # a batch: several parcels, several scans each
      {"billCode": "JO0027364832",              # the AWB
       "txlogisticId": "KB-0001-2026-1",        # our orderid, when J&T knows it
       "details": [
         {"scanTime": "2026-11-03 10:12:00",    # WIB wall clock, no offset
          "scanTypeCode": "100", "scanTypeName": "Delivery Signature", "scanType": "...",
          "desc": "Paket telah diterima oleh Budi Santoso (ISTRI)",
          "scanNetworkName": "...", "scanNetworkCity": "...", "scanNetworkProvince": "...",
          "staffName": "...", "staffContact": "...",
          "sigPicUrl": "https://…/photo.png?…",                  # POD photo(s), comma-separated
          "electronicSignaturePicUrl": "https://…/signature.png?…",
          "problemType": "...", "probleDescription": "..."}     # (sic) on problem scans
       ]}
    ]

The digest is recomputed over the ``bizContent`` value exactly as it arrives in the raw form
body (URL-decoded once), so any change to the body, or a wrong key, fails verification. The
digest does not cover ``timestamp``; replays are harmless because events are deduplicated.

Answer (us → J&T), HTTP 200, ``application/json``, exactly::

    {"code":"1","msg":"success","data":"SUCCESS","requestId":"<id>"}

Anything else (we answer HTTP 400 ``{"code":"0","msg":"fail","data":"FAIL",…}``) makes J&T
send the batch again later.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from adapters.base import PushReply, ResponseInvalid, TrackingEvent
from adapters.jnt.codec import CODE, check_shape, encode_json, jms_digest, scan_event

CONTENT_TYPE = "application/x-www-form-urlencoded"


def biz_content(body: bytes) -> str | None:
    """The one ``bizContent`` value of a raw form body, or None if there is not exactly one."""
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    values = fields.get("bizContent")
    if values is None or len(values) != 1 or set(fields) != {"bizContent"}:
        return None
    return values[0]


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.casefold()
    for key, value in headers.items():
        if key.casefold() == wanted:
            return value
    return ""


def verify(headers: Mapping[str, str], body: bytes, *, api_account: str, private_key: str) -> bool:
    """True only for our account, a numeric timestamp and a digest that matches the body."""
    if not api_account or not private_key:
        return False  # push not configured: accept nothing
    account, digest = _header(headers, "apiAccount"), _header(headers, "digest")
    if not hmac.compare_digest(account.encode(), api_account.encode()):
        return False
    if not _header(headers, "timestamp").strip().isdigit() or not digest:
        return False
    content = biz_content(body)
    if content is None:
        return False
    expected = jms_digest(content, private_key)
    return hmac.compare_digest(digest.strip().encode(), expected.encode())


def parse(body: bytes) -> list[TrackingEvent]:
    """Every scan of every parcel in the batch, oldest first per parcel, batch order kept."""
    content = biz_content(body)
    if content is None:
        raise ResponseInvalid(CODE, "push: no single bizContent field", "$")
    try:
        items = json.loads(content)
    except ValueError:
        raise ResponseInvalid(CODE, "push: bizContent is not JSON", "$") from None
    check_shape("push", items)
    events: list[TrackingEvent] = []
    for i, item in enumerate(items):
        scans = [
            scan_event(item["billCode"], scan, f"$[{i}].details[{j}]")
            for j, scan in enumerate(item["details"])
        ]
        events.extend(sorted(scans, key=lambda e: e.occurred_at))
    return events


def ack(accepted: bool, request_id: str | None = None) -> PushReply:
    rid = request_id or uuid.uuid4().hex
    if accepted:
        body = {"code": "1", "msg": "success", "data": "SUCCESS", "requestId": rid}
        return PushReply(status=200, body=encode_json(body).encode())
    body = {"code": "0", "msg": "fail", "data": "FAIL", "requestId": rid}
    return PushReply(status=400, body=encode_json(body).encode())


def is_ack(status: int, body: bytes) -> bool:
    """Did the receiver acknowledge? (J&T's side of the exchange; used by the simulator.)"""
    if status != 200:
        return False
    try:
        answer: Any = json.loads(body)
    except ValueError:
        return False
    return (
        isinstance(answer, dict)
        and str(answer.get("code")) == "1"
        and answer.get("data") == "SUCCESS"
    )


def build(
    items: Sequence[Mapping[str, Any]], *, api_account: str, private_key: str, now: datetime
) -> tuple[dict[str, str], bytes]:
    """Headers and raw body of a signed push (J&T's side: the simulator and tests)."""
    content = encode_json(list(items))
    headers = {
        "Content-Type": CONTENT_TYPE,
        "apiAccount": api_account,
        "digest": jms_digest(content, private_key),
        "timestamp": str(int(now.timestamp() * 1000)),
    }
    return headers, urlencode({"bizContent": content}).encode("ascii")
