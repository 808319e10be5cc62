"""Couriers as they really answer (issue 9): payload shapes recorded from runs against an
independent implementation of the couriers' wire formats, each parsed by the real client code and
followed through to what the office's policy makes of it. Names are replaced; shapes are kept."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from adapters.jnt import codec as jnt
from adapters.jnt import push
from adapters.posind import codec as pos
from core.status import Status
from courier.domain.handover import HandoverStep, Relation, classify_relation, handover_outcome

AWB = "JO0027364832"


def _push_body(*details: dict[str, Any]) -> bytes:
    batch = [{"billCode": AWB, "txlogisticId": "KB-0001-2026-1", "details": list(details)}]
    return urlencode({"bizContent": jnt.encode_json(batch)}).encode()


def _scan(code: str, desc: str, **extra: str) -> dict[str, Any]:
    return {"scanTime": "2026-11-04 11:02:00", "scanTypeCode": code, "desc": desc, **extra}


def _history(code: str | int, status: str, **extra: str) -> dict[str, Any]:
    return {"date_time": "2026-11-04 11:02:00", "status_code": code, "status": status, **extra}


def _track(*items: dict[str, Any]) -> list[Any]:
    return jnt.parse_track({"awb": AWB, "history": list(items)}, AWB)


# ------------------------------------------------------------------------ J&T delivered by push


@pytest.mark.parametrize(
    ("desc", "name", "relation", "step"),
    [
        # the text that lost every receiver: something after the closing bracket
        ("Received by【SITI RAHAYU】(YBS)", "SITI RAHAYU", "YBS", "confirm"),
        ("Received by【SITI RAHAYU】(YBS) Terima kasih", "SITI RAHAYU", "YBS", "confirm"),
        (
            "Paket telah diterima oleh【BUDI SANTOSO】(Keluarga) Terima kasih telah menggunakan "
            "J&T Express",
            "BUDI SANTOSO",
            "Keluarga",
            "review",
        ),
        (
            "Received by【BUDI SANTOSO】 - Orang Serumah - POD tersedia",
            "BUDI SANTOSO",
            "Orang Serumah",
            "review",
        ),
        ("Paket telah diterima oleh【JOKO】，Tetangga。", "JOKO", "Tetangga", "exception"),
        ("Received by【JOKO】（Satpam）", "JOKO", "Satpam", "exception"),
        ("Received by【SITI RAHAYU】", "SITI RAHAYU", "", "confirm"),
        ("Received by【ANI】 Terima kasih", "ANI", "", "review"),  # neither name nor relation
    ],
)
def test_push_delivered_text_keeps_receiver_and_relation(
    desc: str, name: str, relation: str, step: str
) -> None:
    [event] = push.parse(_push_body(_scan("100", desc, scanTypeName="Delivery Signature")))
    assert event.status is Status.DELIVERED
    assert (event.receiver_name, event.relation) == (name, relation)
    assert event.raw["desc"] == desc
    applicant_received = event.receiver_name == "SITI RAHAYU"
    outcome = handover_outcome(classify_relation(event.relation), applicant_received)
    expected = {
        "confirm": HandoverStep.AWAITING_APPLICANT_CONFIRMATION,
        "review": HandoverStep.NEEDS_REVIEW,
        "exception": HandoverStep.EXCEPTION,
    }[step]
    assert outcome.step is expected


# ------------------------------------------------------------------ J&T legacy: note and receiver


@pytest.mark.parametrize(
    ("item", "name", "relation", "kind"),
    [
        (
            _history("200", "Paket telah diterima oleh【BUDI】", receiver="BUDI", note="Keluarga"),
            "BUDI",
            "Keluarga",
            Relation.FAMILY,
        ),
        (
            _history("200", "Paket telah diterima oleh BUDI", receiver="", note="Orang Serumah"),
            "BUDI",
            "Orang Serumah",
            Relation.FAMILY,
        ),
        (
            _history("200", "Received by【JOKO】(YBS)", receiver="JOKO", note="Tetangga"),
            "JOKO",
            "Tetangga",  # the structured note wins over the text
            Relation.OTHER,
        ),
        (
            _history("200", "Received by【SITI】(YBS) Terima kasih", receiver="SITI R", note=""),
            "SITI R",  # the structured receiver wins over the text
            "YBS",
            Relation.SELF,
        ),
        (
            _history("200", "Paket telah diterima", receiver="ANI", note="Pacar"),
            "ANI",
            "Pacar",
            Relation.UNKNOWN,  # not in the vocabulary: a person reviews it
        ),
    ],
)
def test_legacy_delivered_takes_structured_fields_first(
    item: dict[str, Any], name: str, relation: str, kind: Relation
) -> None:
    [event] = _track(item)
    assert event.status is Status.DELIVERED
    assert (event.receiver_name, event.relation) == (name, relation)
    assert classify_relation(event.relation) is kind
    if kind is not Relation.OTHER:
        outcome = handover_outcome(kind, False)
        assert outcome.step is HandoverStep.NEEDS_REVIEW


# ---------------------------------------------------------------------- problem scans, code first


@pytest.mark.parametrize(
    ("item", "status", "reason"),
    [
        (
            _history("150", "Penerima tidak di rumah"),
            Status.DELIVERY_FAILED,
            "Penerima tidak di rumah",
        ),
        (
            _history("150", "Rumah kosong", note="rumah kosong"),
            Status.DELIVERY_FAILED,
            "rumah kosong",
        ),
        (
            _history("150", "Problem: Alamat tidak ditemukan"),
            Status.DELIVERY_FAILED,
            "Problem: Alamat tidak ditemukan",
        ),
        (
            _history("150", "Paket bermasalah", note="Nomor tidak aktif"),
            Status.DELIVERY_FAILED,
            "Nomor tidak aktif",
        ),
        (
            _history("150", "Paket gagal dikirim: Penerima tidak di tempat"),
            Status.DELIVERY_FAILED,
            None,
        ),
        (_history("150", "Paket hilang"), Status.LOST, "Paket hilang"),
        (_history("150", "Paket bermasalah", note="Paket dinyatakan hilang"), Status.LOST, None),
        # held at the courier: none of our statuses fits, a person reads it
        (_history("150", "Paket ditahan di gudang"), None, "Paket ditahan di gudang"),
        (_history(150, "Paket rusak"), None, "Paket rusak"),  # a number, as some answers send it
    ],
)
def test_legacy_150_is_a_problem_scan_whatever_its_words(
    item: dict[str, Any], status: Status | None, reason: str | None
) -> None:
    [event] = _track(item)
    assert event.status is status
    assert event.raw_code == "150" and event.raw_text == item["status"]
    if reason is not None:
        assert event.reason == reason
    assert event.reason  # a problem scan always says why


@pytest.mark.parametrize(
    ("scan", "status"),
    [
        (_scan("110", "tidak di rumah"), Status.DELIVERY_FAILED),
        (
            _scan("110", "Abnormal parcel: rumah kosong", problemType="rumah kosong"),
            Status.DELIVERY_FAILED,
        ),
        (
            _scan("110", "alamat tidak ditemukan", probleDescription="Alamat tidak ditemukan"),
            Status.DELIVERY_FAILED,
        ),
        (_scan("110", "Abnormal parcels scan"), Status.DELIVERY_FAILED),
        (_scan("110", "Abnormal parcels scan", problemType="Parcel damaged"), None),
        (_scan("110", "Paket hilang"), Status.LOST),
        (_scan("100", "Signing scan"), Status.DELIVERED),
    ],
)
def test_push_110_is_a_problem_scan_whatever_its_reason(
    scan: dict[str, Any], status: Status | None
) -> None:
    [event] = push.parse(_push_body(scan))
    assert event.status is status
    if status is not Status.DELIVERED:
        assert event.reason


@pytest.mark.parametrize(
    ("code", "text"), [("999", "Kode baru"), ("151", "Penerima tidak di rumah")]
)
def test_unknown_code_is_kept_raw_and_never_guessed(code: str, text: str) -> None:
    [event] = _track(_history(code, text, note="x"))
    assert event.status is None
    assert (event.raw_code, event.raw_text, event.raw["note"]) == (code, text, "x")
    [pushed] = push.parse(_push_body(_scan(code, text)))
    assert pushed.status is None and pushed.raw_code == code


# ----------------------------------------------------------------------------- Pos SELESAI ANTAR


@pytest.mark.parametrize(
    ("description", "status", "who", "reason"),
    [
        (
            "Diterima;PENERIMA / KETERANGAN : SITI RAHAYU (Keluarga) TTD DIGITAL",
            Status.DELIVERED,
            ("SITI RAHAYU", "Keluarga"),
            "",
        ),
        (
            "Diterima;PENERIMA / KETERANGAN : ORANG SERUMAH;FOTO : TERLAMPIR",
            Status.DELIVERED,
            ("", "ORANG SERUMAH"),
            "",
        ),
        ("Diterima;PENERIMA / KETERANGAN : Serumah", Status.DELIVERED, ("", "Serumah"), ""),
        ("Antar Ulang;KETERANGAN : RUMAH KOSONG", Status.DELIVERY_FAILED, ("", ""), "RUMAH KOSONG"),
        (
            "Antar Ulang;KETERANGAN : ALAMAT TIDAK DITEMUKAN",
            Status.DELIVERY_FAILED,
            ("", ""),
            "ALAMAT TIDAK DITEMUKAN",
        ),
    ],
)
def test_pos_selesai_antar_as_counters_write_it(
    description: str, status: Status, who: tuple[str, str], reason: str
) -> None:
    body = {
        "rs_tnt": {
            "r_tnt": {
                "barcode": "P2611020000001",
                "eventDate": "2026-11-04 11:02:00",
                "eventName": "SELESAI ANTAR",
                "officeCode": "66133",
                "officeName": "KPC BLITAR",
                "description": description,
            }
        }
    }
    [event] = pos.parse_track(body, "P2611020000001")
    assert event.status is status
    assert (event.receiver_name, event.relation) == who
    assert event.reason == reason
    if status is Status.DELIVERED:
        assert classify_relation(event.relation) is Relation.FAMILY
