"""Pos Indonesia pure build/parse functions on payloads shaped as couriers.md §2 shows them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from adapters.base import (
    Address,
    CourierRejected,
    OutcomeUnknown,
    Party,
    ResponseInvalid,
    ShipmentOrder,
)
from adapters.posind import codec
from adapters.posind.statuses import EVENT_STATUS, status_for
from core.status import Status

OFFICE = Party(
    name="Kantor Imigrasi Blitar",
    phone="+62342801234",
    email="kanim@example.go.id",
    address=Address(
        "Jl. Sudanco Supriadi No. 50",
        "Bendogerit",
        "Sananwetan",
        "Kota Blitar",
        "Jawa Timur",
        "66133",
        "35.72",
        "35.72.03",
    ),
)
APPLICANT = Party(
    name="Siti Rahayu",
    phone="+6281234567890",
    address=Address(
        "Jl. Ijen No. 7",
        "Oro-oro Dowo",
        "Klojen",
        "Kota Malang",
        "Jawa Timur",
        "65119",
        "35.73",
        "35.73.02",
        note="rumah pagar hijau",
    ),
)
ORDER = ShipmentOrder(
    reference="BLT-0001-1",
    sender=OFFICE,
    receiver=APPLICANT,
    weight_kg=Decimal("0.2501"),
    declared_value=350000,
    service="240",
    insured=True,
)


def event(
    name: str, date: str, description: str = "", office: str = "KPRK BLITAR 66100"
) -> dict[str, Any]:
    return {
        "barcode": "P2611020000001",
        "eventDate": date,
        "eventName": name,
        "officeCode": "66100",
        "officeName": office,
        "description": description,
    }


# ------------------------------------------------------------------------------ AddPostingDoc


def test_posting_body_has_the_full_shape() -> None:
    body = codec.build_posting(ORDER, userid=7, memberid="DUMMY05400A")
    assert schemas.check("couriers/posind/posting_request", body) == []
    assert (body["userid"], body["memberid"], body["orderid"]) == (7, "DUMMY05400A", "BLT-0001-1")
    by_type = {a["addresstype"]: a for a in body["addresses"]}
    assert set(by_type) == {
        "senderlocation",
        "receiverlocation",
        "pickuplocation",
        "deliverylocation",
    }
    assert by_type["deliverylocation"]["phone"] == "081234567890"
    assert by_type["deliverylocation"]["zipcode"] == "65119"
    assert by_type["deliverylocation"]["description"] == "rumah pagar hijau"
    assert "geolang" in by_type["senderlocation"]  # sic
    assert body["itemdetils"][0]["value"] == 350000  # sic
    props = body["itemproperties"]
    assert (props["productid"], props["weight"], props["valuegoods"]) == ("240", 251, 350000)
    assert {p["name"] for p in body["paymentvalues"]} == {"fee", "insurance"}
    assert {t["name"] for t in body["taxes"]} == {"fee", "insurance"}
    services = {s["name"]: s["value"] for s in body["services"]}
    assert services == {
        "insurance": 1,
        "genreceipt": 1,
        "printreceipt": 0,
        "cod": 0,
        "pickup": 1,
        "delivery": 1,
        "notiftosender": 0,
        "notiftoreceiver": 1,
    }


@pytest.mark.parametrize(
    ("e164", "local"),
    [
        ("+6281234567890", "081234567890"),
        ("+62 342-801234", "0342801234"),
        ("081234567890", "081234567890"),
    ],
)
def test_phone_goes_domestic(e164: str, local: str) -> None:
    assert codec.local_phone(e164) == local


def test_posting_success_gives_the_barcode() -> None:
    booking = codec.parse_posting(
        {
            "responseCode": "000",
            "responseDesc": "Sukses",
            "orderid": "BLT-0001-1",
            "barcode": "P2611020000001",
        },
        "BLT-0001-1",
    )
    assert (booking.reference, booking.waybill) == ("BLT-0001-1", "P2611020000001")


@pytest.mark.parametrize(
    "body",
    [
        {"responseCode": "102", "responseDesc": "Orderid sudah terdaftar"},
        {"responseCode": "999", "responseDesc": "Order ID already exists"},
        {"responseCode": 500, "responseDesc": "orderid tidak boleh sama"},
    ],
)
def test_duplicate_orderid_is_outcome_unknown(body: dict[str, Any]) -> None:
    with pytest.raises(OutcomeUnknown):
        codec.parse_posting(body, "BLT-0001-1")


def test_other_refusal_is_rejected_with_code_and_reason() -> None:
    with pytest.raises(CourierRejected) as info:
        codec.parse_posting({"responseCode": "101", "responseDesc": "Data tidak valid"}, "R")
    assert (info.value.code, info.value.reason) == ("101", "Data tidak valid")


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"responseDesc": "Sukses"}, "$"),
        ({"responseCode": "000"}, "$.barcode"),
        ({"respcode": "000", "respmsg": "Sukses"}, "$.barcode"),
        ({"responseCode": "000", "barcode": "P1", "orderid": "OTHER"}, "$.orderid"),
        ([], "$"),
    ],
)
def test_posting_bad_shape_names_the_path(body: Any, path: str) -> None:
    with pytest.raises(ResponseInvalid) as info:
        codec.parse_posting(body, "R")
    assert info.value.path == path


# Answers as they were recorded: the respcode/respmsg naming that made every Pos booking
# "outcome unknown" while the orders existed (issue 9), and its refusals.
RESPCODE_SUCCESS = {
    "respcode": "000",
    "respmsg": "Sukses",
    "orderid": "BLT-0001-1",
    "barcode": "P2611020000001",
}


@pytest.mark.parametrize(
    "body",
    [
        RESPCODE_SUCCESS,
        {**RESPCODE_SUCCESS, "respmsg": None},
        {"responseCode": "000", "responseDesc": "Sukses", "barcode": "P2611020000001"},
    ],
)
def test_both_answer_namings_book(body: dict[str, Any]) -> None:
    booking = codec.parse_posting(body, "BLT-0001-1")
    assert booking.waybill == "P2611020000001"
    assert booking.raw == body  # the answer kept as it came


def test_refusals_read_the_same_in_the_respcode_naming() -> None:
    with pytest.raises(OutcomeUnknown):
        codec.parse_posting({"respcode": "102", "respmsg": "Orderid sudah terdaftar"}, "R")
    with pytest.raises(CourierRejected) as info:
        codec.parse_posting({"respcode": "103", "respmsg": "Memberid tidak terdaftar"}, "R")
    assert (info.value.code, info.value.reason) == ("103", "Memberid tidak terdaftar")


@pytest.mark.parametrize(
    "body",
    [
        {"status": "OK", "data": {"awb": "P2611020000001"}},  # a naming we do not know
        {"respcode": ["000"], "respmsg": "Sukses"},  # a known naming, an odd value
        {"respcode": "000", "respmsg": "Sukses"},  # success without a barcode
        "Sukses",
    ],
)
def test_answer_not_understood_is_distinct_and_keeps_the_raw_redacted(body: Any) -> None:
    with pytest.raises(codec.AnswerNotUnderstood) as info:
        codec.parse_posting(body, "BLT-0001-1")
    err = info.value
    assert isinstance(err, ResponseInvalid)  # still a courier answer we cannot use
    assert "order may exist" in err.message and "BLT-0001-1" in err.message
    assert err.reference == "BLT-0001-1"
    assert err.raw is not None


def test_redacted_answer_keeps_codes_and_masks_what_could_be_personal() -> None:
    answer = {
        "status": "OK",
        "respmsg": "Sukses",
        "data": {"awb": "P1", "receiver": {"name": "SITI RAHAYU", "phone": "0812"}, "n": 2},
        "items": [{"address": "Jl. Mawar 1"}],
    }
    assert codec.redact_answer(answer) == {
        "status": "OK",
        "respmsg": "Sukses",
        "data": {"awb": "P1", "receiver": {"name": "[redacted]", "phone": "[redacted]"}, "n": 2},
        "items": [{"address": "[redacted]"}],
    }


def test_the_schema_is_the_one_table_of_namings() -> None:
    entries = schemas.load(codec.POSTING_SCHEMA)["anyOf"]
    namings = codec.posting_namings()
    assert [n.code for n in namings] == ["responseCode", "respcode"]
    for entry, naming in zip(entries, namings, strict=True):
        assert entry["required"] == [naming.code]
        for field in (naming.code, naming.message, naming.barcode, naming.reference):
            assert field in entry["properties"]


# ------------------------------------------------------------------------------ track


def test_rs_tnt_null_is_unknown_barcode() -> None:
    assert codec.parse_track({"rs_tnt": None}, "P404") == []
    assert codec.parse_track({"rs_tnt": {"r_tnt": None}}, "P404") == []


def test_single_event_as_object_not_array() -> None:
    body = {
        "rs_tnt": {
            "r_tnt": event(
                "POSTING LOKET", "2026-11-02 10:19:00", "LAYANAN : PAKET KILAT KHUSUS;PENGIRIM : X"
            )
        }
    }
    (only,) = codec.parse_track(body, "P2611020000001")
    assert only.status is Status.PICKED_UP
    assert only.occurred_at == datetime(2026, 11, 2, 3, 19, tzinfo=UTC)  # WIB → UTC
    assert only.location == "KPRK BLITAR 66100"
    assert only.raw["officeCode"] == "66100"


def test_array_is_ordered_oldest_first_and_names_mapped() -> None:
    body = {
        "rs_tnt": {
            "r_tnt": [
                event("PROSES ANTAR", "2026-11-03 07:40:00"),
                event("MANIFEST TERIMA", "2026-11-03 05:10:00.0", "KANTOR ASAL : KPRK BLITAR"),
                event("MANIFEST SERAH", "2026-11-02T18:21:00", "KANTOR TUJUAN : KPC MALANG"),
                event("POSTING LOKET", "2026-11-02 10:19:00"),
            ]
        }
    }
    events = codec.parse_track(body, "P1")
    assert [e.raw_code for e in events] == [
        "POSTING LOKET",
        "MANIFEST SERAH",
        "MANIFEST TERIMA",
        "PROSES ANTAR",
    ]
    assert [e.status for e in events] == [
        Status.PICKED_UP,
        Status.IN_TRANSIT,
        Status.IN_TRANSIT,
        Status.OUT_FOR_DELIVERY,
    ]


def test_unknown_event_name_is_unmapped_not_guessed() -> None:
    (e,) = codec.parse_track(
        {"rs_tnt": {"r_tnt": event("Puri Kirim", "2026-11-02 10:19:00")}}, "P1"
    )
    assert e.status is None and e.raw_code == "PURI KIRIM"
    assert status_for("SOMETHING NEW") is None
    assert "SELESAI ANTAR" not in EVENT_STATUS  # decided by its description, never by name


@pytest.mark.parametrize(
    ("description", "receiver", "relation"),
    [
        ("Diterima;PENERIMA / KETERANGAN : SITI RAHAYU (YBS)", "SITI RAHAYU", "YBS"),
        ("Diterima oleh : PENERIMA / KETERANGAN : Orang Serumah", "", "Orang Serumah"),
        ("DITERIMA; PENERIMA / KETERANGAN : BUDI SANTOSO / ISTRI", "BUDI SANTOSO", "ISTRI"),
        ("Diterima;PENERIMA / KETERANGAN : ORANG TUA - JOKO", "JOKO", "ORANG TUA"),
        ("Diterima;PENERIMA / KETERANGAN : AGUS PRASETYO", "AGUS PRASETYO", ""),
        ("Diterima;PENERIMA / KETERANGAN : YBS", "", "YBS"),
        ("PENERIMA / KETERANGAN : RINA (TETANGGA);TGL : 2026-11-03", "RINA", "TETANGGA"),
    ],
)
def test_selesai_antar_delivered_with_receiver_and_relation(
    description: str, receiver: str, relation: str
) -> None:
    (e,) = codec.parse_track(
        {"rs_tnt": {"r_tnt": event("SELESAI ANTAR", "2026-11-03 09:36:00", description)}}, "P1"
    )
    assert (e.status, e.receiver_name, e.relation) == (Status.DELIVERED, receiver, relation)
    assert e.raw_text == description


@pytest.mark.parametrize(
    ("description", "reason"),
    [
        ("Antar Ulang;KETERANGAN : Penerima tidak di tempat", "Penerima tidak di tempat"),
        ("ANTAR ULANG; KETERANGAN :  Alamat tidak  jelas", "Alamat tidak jelas"),
        ("Antar Ulang", ""),
    ],
)
def test_selesai_antar_failed_attempt_with_reason(description: str, reason: str) -> None:
    (e,) = codec.parse_track(
        {"rs_tnt": {"r_tnt": event("SELESAI ANTAR", "2026-11-03 11:11:00", description)}}, "P1"
    )
    assert (e.status, e.reason, e.receiver_name) == (Status.DELIVERY_FAILED, reason, "")


@pytest.mark.parametrize(
    "description",
    [
        "",
        "Kiriman sudah diproses",
        "Tidak diterima;KETERANGAN : menolak",
        "Diterima;Antar Ulang;KETERANGAN : ?",
        "Ditolak penerima",
    ],
)
def test_selesai_antar_ambiguous_is_unmapped(description: str) -> None:
    status, *_ = codec.split_selesai_antar(description)
    assert status is None


def test_posting_loket_semicolon_fields() -> None:
    text = (
        "LAYANAN : PAKET KILAT KHUSUS;PENGIRIM : KANIM BLITAR;JL SUDANCO SUPRIADI 50;"
        "BLITAR;66133;0342801234;PENERIMA : SITI RAHAYU;JL IJEN 7;MALANG;081234567890;"
        "BERAT : 251 GRAM;65119"
    )
    assert codec.parse_posting_loket(text) == {
        "service": "PAKET KILAT KHUSUS",
        "receiver_postcode": "65119",
    }


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({}, "$.rs_tnt"),
        ({"rs_tnt": "nope"}, "$.rs_tnt"),
        (
            {
                "rs_tnt": {
                    "r_tnt": [event("POSTING LOKET", "2026-11-02 10:19:00"), {"eventName": "X"}]
                }
            },
            "$.rs_tnt.r_tnt[1].eventDate",
        ),
        ({"rs_tnt": {"r_tnt": {"eventDate": "2026-11-02 10:19:00"}}}, "$.rs_tnt.r_tnt.eventName"),
        (
            {"rs_tnt": {"r_tnt": [event("POSTING LOKET", "02/11/2026 10:19")]}},
            "$.rs_tnt.r_tnt[0].eventDate",
        ),
    ],
)
def test_track_bad_shape_names_the_path_not_the_payload(body: Any, path: str) -> None:
    with pytest.raises(ResponseInvalid) as info:
        codec.parse_track(body, "P1")
    assert info.value.path == path
    assert "SITI" not in str(info.value) and "10:19" not in str(info.value)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_property_selesai_antar_never_crashes_and_is_exclusive(description: str) -> None:
    status, receiver, relation, reason = codec.split_selesai_antar(description)
    assert status in (None, Status.DELIVERED, Status.DELIVERY_FAILED)
    if status is not Status.DELIVERED:
        assert receiver == relation == ""
    if status is not Status.DELIVERY_FAILED:
        assert reason == ""


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(["POSTING LOKET", "MANIFEST SERAH", "PROSES ANTAR", "X"]),
        min_size=1,
        max_size=6,
    )
)
def test_property_object_or_array_read_alike(names: list[str]) -> None:
    items = [event(n, f"2026-11-0{2 + i} 10:00:00") for i, n in enumerate(names)]
    as_array = codec.parse_track({"rs_tnt": {"r_tnt": items}}, "P1")
    assert [e.raw_code for e in as_array] == names
    if len(items) == 1:
        assert codec.parse_track({"rs_tnt": {"r_tnt": items[0]}}, "P1") == as_array


# ------------------------------------------------------------------------------ token


def test_token_response() -> None:
    body = {
        "access_token": "8f1c0b7e-1d2a-3c4b-9e8f-0a1b2c3d4e5f",
        "scope": "default",
        "token_type": "Bearer",
        "expires_in": 3600,
    }
    assert codec.parse_token(body) == ("8f1c0b7e-1d2a-3c4b-9e8f-0a1b2c3d4e5f", 3600.0)
    assert codec.parse_token({"access_token": "t"}) == ("t", None)
    with pytest.raises(ResponseInvalid) as info:
        codec.parse_token({"token_type": "Bearer"})
    assert info.value.path == "$.access_token"
