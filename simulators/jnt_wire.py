"""J&T's side of the wire, written from the published descriptions (couriers.md §1), not from the
client in ``adapters/jnt``: if the client signs wrongly, this simulator refuses it, so one bug
cannot hide on both sides. Checked against RFC 1321's MD5 test vectors and vectors computed with
coreutils (``tests/unit/adapters/test_sim_jnt_wire.py``).

* legacy ``data_sign``: base64 of the md5 of (data_param + key). Integrators feed base64 the 32
  lower-case *hex characters* (the default); one tenant wants the 16 raw bytes instead.
* JMS ``digest``: base64 of the 16 raw md5 bytes of (bizContent + privateKey).
* a push: form body ``bizContent=<JSON array>`` with headers ``apiAccount``, ``digest``,
  ``timestamp`` (epoch ms); the receiver must answer ``{"code":"1",…,"data":"SUCCESS"}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from core.clock import WIB

WALL_FORMAT = "%Y-%m-%d %H:%M:%S"


def _md5(text: str) -> bytes:
    # surrogatepass: a lone surrogate in what arrived gets a refusal, not a simulator crash
    return hashlib.md5(text.encode("utf-8", "surrogatepass"), usedforsecurity=False).digest()


def data_sign(data_param: str, key: str, variant: str = "hex") -> str:
    """The legacy ``data_sign`` for ``data_param`` under ``key``; variant "hex" or "raw"."""
    raw = _md5(data_param + key)
    material = raw.hex().encode("ascii") if variant == "hex" else raw
    return str(base64.standard_b64encode(material), "ascii")


def jms_digest(biz_content: str, private_key: str) -> str:
    """The JMS header ``digest`` (raw md5 bytes, base64)."""
    return str(base64.standard_b64encode(_md5(biz_content + private_key)), "ascii")


def to_json(value: Any) -> str:
    """How J&T's servers write JSON: UTF-8 as is, compact."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def wall(when: datetime) -> str:
    """A J&T wall-clock time: WIB, no offset."""
    return when.astimezone(WIB).strftime(WALL_FORMAT)


def push_request(
    items: Sequence[Mapping[str, Any]], *, api_account: str, private_key: str, now: datetime
) -> tuple[dict[str, str], bytes]:
    """Headers and form body of one signed push batch."""
    content = to_json(list(items))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "apiAccount": api_account,
        "digest": jms_digest(content, private_key),
        "timestamp": str(int(now.timestamp() * 1000)),
    }
    return headers, ("bizContent=" + quote(content, safe="")).encode("ascii")


def acknowledged(status: int, body: bytes) -> bool:
    """Did the receiver answer the exact acknowledgement J&T expects?"""
    if status != 200:
        return False
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return (
        isinstance(answer, dict)
        and str(answer.get("code")) == "1"
        and answer.get("data") == "SUCCESS"
    )
