"""The J&T (JMS-style) push: digest verification over the raw body, batch parsing, the ACK."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.base import ResponseInvalid
from adapters.jnt import push
from core.status import Status

NOW = datetime(2026, 11, 3, 6, 0, tzinfo=UTC)
ACCOUNT, KEY = "292508153084379141", "a0a1a2a3b0b1b2b3"

# Shaped as the MY open-platform push (couriers.md §1B): a batch, several scans per parcel.
BATCH: list[dict[str, Any]] = [
    {
        "billCode": "JO0027364832",
        "txlogisticId": "BLT-0001-1",
        "details": [
            {
                "scanTime": "2026-11-03 13:05:00",
                "scanTypeCode": "100",
                "scanTypeName": "Delivery Signature",
                "scanType": "Delivery Signature",
                "desc": "Paket telah diterima oleh Siti Rahayu (ORANG TUA)",
                "scanNetworkName": "MALANG KLOJEN",
                "scanNetworkCity": "MALANG",
                "staffName": "Sprinter",
                "staffContact": "+6280000000000",
                "sigPicUrl": "https://pod.example/p.png?sig=1",
                "electronicSignaturePicUrl": "https://pod.example/s.png?sig=2",
            },
            {
                "scanTime": "2026-11-03 07:40:00",
                "scanTypeCode": "94",
                "scanTypeName": "Delivery scan",
                "desc": "Delivery scan MALANG KLOJEN",
                "scanNetworkName": "MALANG KLOJEN",
            },
        ],
    },
    {
        "billCode": "JO0027364833",
        "details": [
            {
                "scanTime": "2026-11-03 11:00:00",
                "scanTypeCode": "110",
                "scanTypeName": "Abnormal parcel scan",
                "desc": "Paket gagal dikirim: Alamat tidak jelas",
                "problemType": "Alamat tidak jelas",
                "probleDescription": "Alamat tidak jelas",
            },
            {"scanTime": "2026-11-03 12:00:00", "scanTypeCode": "555", "desc": "Kode baru"},
        ],
    },
]


def signed(items: Any = BATCH, key: str = KEY) -> tuple[dict[str, str], bytes]:
    return push.build(items, api_account=ACCOUNT, private_key=key, now=NOW)


def verify(headers: dict[str, str], body: bytes) -> bool:
    return push.verify(headers, body, api_account=ACCOUNT, private_key=KEY)


def test_digest_is_base64_of_raw_md5_of_biz_content_plus_key() -> None:
    headers, body = signed()
    content = push.biz_content(body)
    assert content is not None
    raw = hashlib.md5((content + KEY).encode()).digest()
    assert headers["digest"] == base64.b64encode(raw).decode()
    assert headers["timestamp"] == str(int(NOW.timestamp() * 1000))


def test_a_genuine_push_verifies_with_any_header_case() -> None:
    headers, body = signed()
    assert verify(headers, body)
    assert verify({k.lower(): v for k, v in headers.items()}, body)


def test_forged_and_altered_pushes_are_refused() -> None:
    headers, body = signed()
    assert not verify(*signed(key="guessed-key"))
    assert not verify(headers, body.replace(b"ORANG+TUA", b"YBS"))
    assert not verify({**headers, "apiAccount": "someone-else"}, body)
    assert not verify({**headers, "timestamp": ""}, body)
    assert not verify({k: v for k, v in headers.items() if k != "digest"}, body)
    assert not verify(headers, body + b"&bizContent=%5B%5D")  # a second bizContent
    assert not verify(headers, body + b"&extra=1")
    assert not push.verify(headers, body, api_account="", private_key="")  # not configured


def test_hex_digest_is_not_the_push_digest() -> None:
    headers, body = signed()
    content = push.biz_content(body) or ""
    hexed = base64.b64encode(hashlib.md5((content + KEY).encode()).hexdigest().encode()).decode()
    assert not verify({**headers, "digest": hexed}, body)


def test_batch_parses_every_scan_with_scans_in_time_order() -> None:
    _, body = signed()
    events = push.parse(body)
    assert [(e.waybill, e.raw_code) for e in events] == [
        ("JO0027364832", "94"),
        ("JO0027364832", "100"),
        ("JO0027364833", "110"),
        ("JO0027364833", "555"),
    ]
    assert [e.status for e in events] == [
        Status.OUT_FOR_DELIVERY,
        Status.DELIVERED,
        Status.DELIVERY_FAILED,
        None,
    ]
    delivered = events[1]
    assert delivered.occurred_at == datetime(2026, 11, 3, 6, 5, tzinfo=UTC)  # 13:05 WIB
    assert (delivered.receiver_name, delivered.relation) == ("Siti Rahayu", "ORANG TUA")
    assert [a.kind for a in delivered.artefacts] == ["photo", "signature"]
    assert events[2].reason == "Alamat tidak jelas"


def test_a_resent_push_gives_the_same_dedupe_keys() -> None:
    _, first = signed()
    _, again = push.build(
        BATCH, api_account=ACCOUNT, private_key=KEY, now=datetime(2026, 11, 3, 7, 0, tzinfo=UTC)
    )
    assert [e.dedupe_key for e in push.parse(first)] == [e.dedupe_key for e in push.parse(again)]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"", "$"),
        (b"bizContent=not-json", "$"),
        (urlencode({"bizContent": json.dumps({"billCode": "x"})}).encode(), "$"),
        (urlencode({"bizContent": json.dumps([{"details": []}])}).encode(), "$[0].billCode"),
        (
            urlencode(
                {
                    "bizContent": json.dumps(
                        [
                            {
                                "billCode": "JO1",
                                "details": [{"scanTime": "kemarin", "scanTypeCode": "10"}],
                            }
                        ]
                    )
                }
            ).encode(),
            "$[0].details[0].scanTime",
        ),
    ],
)
def test_bad_pushes_are_response_invalid_naming_the_path(body: bytes, path: str) -> None:
    with pytest.raises(ResponseInvalid) as err:
        push.parse(body)
    assert err.value.path == path


def test_ack_is_the_exact_body_jnt_expects() -> None:
    reply = push.ack(True, request_id="abc123")
    assert reply.status == 200 and reply.content_type == "application/json"
    assert reply.body == b'{"code":"1","msg":"success","data":"SUCCESS","requestId":"abc123"}'
    assert push.is_ack(reply.status, reply.body)
    refusal = push.ack(False, request_id="abc123")
    assert refusal.status == 400 and json.loads(refusal.body)["code"] == "0"
    assert not push.is_ack(refusal.status, refusal.body)
    assert not push.is_ack(200, b'{"code":"1","data":"FAIL"}')


@given(st.binary(min_size=1, max_size=3), st.integers(min_value=0))
def test_any_change_to_the_body_that_changes_its_content_fails(junk: bytes, at: int) -> None:
    headers, body = signed()
    i = at % len(body)
    tampered = body[:i] + junk + body[i + 1 :]
    if verify(headers, tampered):
        # only an encoding-equivalent body may pass (e.g. %2f for %2F): same content signed
        assert push.biz_content(tampered) == push.biz_content(body)


@given(st.text(max_size=60))
def test_any_desc_text_round_trips_through_the_form_encoding(desc: str) -> None:
    items = [
        {
            "billCode": "JO1",
            "details": [{"scanTime": "2026-11-03 10:00:00", "scanTypeCode": "10", "desc": desc}],
        }
    ]
    headers, body = signed(items)
    assert verify(headers, body)
    assert push.parse(body)[0].raw_text == (desc or "")
