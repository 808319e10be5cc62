"""The simulator's own J&T signing, against vectors computed outside Python (RFC 1321's MD5 test
suite, and coreutils ``md5sum | base64``), then against the client: two implementations that
agree with the same published vectors, so a bug in one cannot hide in the other."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import parse_qs

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.jnt import codec, push
from simulators import jnt_wire as wire

# (data_param, key, data_sign hex variant, data_sign raw variant)
VECTORS = [
    # RFC 1321 A.5: MD5("") = d41d8cd98f00b204e9800998ecf8427e
    ("", "", "ZDQxZDhjZDk4ZjAwYjIwNGU5ODAwOTk4ZWNmODQyN2U=", "1B2M2Y8AsgTpgAmY7PhCfg=="),
    # RFC 1321 A.5: MD5("abc") = 900150983cd24fb0d6963f7d28e17f72, split between text and key
    ("ab", "c", "OTAwMTUwOTgzY2QyNGZiMGQ2OTYzZjdkMjhlMTdmNzI=", "kAFQmDzST7DWlj99KOF/cg=="),
    # RFC 1321 A.5: MD5("message digest") = f96b697d7cb7938d525a2f31aaf161d0
    ("message ", "digest", "Zjk2YjY5N2Q3Y2I3OTM4ZDUyNWEyZjMxYWFmMTYxZDA=", None),
    # UTF-8 (an en dash) and slashes left unescaped: printf '%s' "$T" | md5sum
    (
        '{"detail":[{"orderid":"KB-1","receiver_addr":"Jl. Cempaka – Blitar, RT 01/02"}]}',
        "sim-order-key",
        "ZTY3YWEyOGIwZmVlODc4YjhiNzY0N2M3MzA4Y2JjN2E=",
        "5nqiiw/uh4uLdkfHMIy8eg==",
    ),
]


def test_data_sign_matches_published_and_coreutils_vectors() -> None:
    for text, key, hex_sign, raw_sign in VECTORS:
        assert wire.data_sign(text, key) == hex_sign
        if raw_sign is not None:
            assert wire.data_sign(text, key, "raw") == raw_sign
            assert wire.jms_digest(text, key) == raw_sign


def test_client_signs_the_same_vectors() -> None:
    for text, key, hex_sign, raw_sign in VECTORS:
        assert codec.sign(text, key) == hex_sign
        if raw_sign is not None:
            assert codec.sign(text, key, "raw") == raw_sign
            assert codec.jms_digest(text, key) == raw_sign


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.text(), st.text())
def test_client_and_simulator_agree_on_any_text(text: str, key: str) -> None:
    try:
        expected = codec.sign(text, key)
    except UnicodeEncodeError:  # a lone surrogate: the client cannot sign it at all
        return
    assert wire.data_sign(text, key) == expected
    assert wire.jms_digest(text, key) == codec.jms_digest(text, key)


def test_push_request_is_verified_and_parsed_by_the_client() -> None:
    items = [
        {
            "billCode": "JO0027364832",
            "txlogisticId": "KB-1",
            "details": [
                {
                    "scanTime": "2026-11-03 10:12:00",
                    "scanTypeCode": "100",
                    "desc": "Received by【SITI / RAHAYU】(YBS) & more",
                }
            ],
        }
    ]
    now = datetime(2026, 11, 3, 3, 12, tzinfo=UTC)
    headers, body = wire.push_request(items, api_account="acc", private_key="pk", now=now)
    assert headers["timestamp"] == str(int(now.timestamp() * 1000))
    assert json.loads(parse_qs(body.decode())["bizContent"][0]) == items
    assert push.verify(headers, body, api_account="acc", private_key="pk")
    assert not push.verify(headers, body, api_account="acc", private_key="other")
    [event] = push.parse(body)
    assert event.receiver_name == "SITI / RAHAYU"
    assert event.relation == "YBS"


def test_acknowledged_only_for_the_exact_answer() -> None:
    good = push.ack(True)
    assert wire.acknowledged(good.status, good.body)
    bad = push.ack(False)
    assert not wire.acknowledged(bad.status, bad.body)
    assert not wire.acknowledged(200, b'{"code":"1","data":"FAIL"}')
    assert not wire.acknowledged(200, b"not json")
    assert wire.wall(datetime(2026, 11, 3, 3, 12, tzinfo=UTC)) == "2026-11-03 10:12:00"
