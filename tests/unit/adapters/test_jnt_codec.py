"""J&T wire functions on recorded payloads shaped as in couriers.md §1A (names replaced)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas
from adapters.base import (
    Address,
    AuthFailed,
    CourierRejected,
    OutcomeUnknown,
    Party,
    ResponseInvalid,
    ShipmentOrder,
)
from adapters.jnt import codec, statuses
from adapters.jnt.codec import JntConfig
from core.status import Status

NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 08:00 WIB

CONFIG = JntConfig(
    username="OFFICE",
    api_key="API-KEY",
    order_key="ORDER-KEY",
    cancel_key="CANCEL-KEY",
    eccompanyid="OFFICE",
    tracking_password="TRACK-PW",
    origin_code="BLT",
    city_codes={"35.73": "MLG"},
    area_codes={"35.73.01": "MLG001", "35.73": "MLG002"},
    customer_code="CUST",
    api_account="ACC",
    private_key="PRIV",
)

OFFICE = Address(
    "Jl. Kenari No. 54",
    "Sananwetan",
    "Sananwetan",
    "Kota Blitar",
    "Jawa Timur",
    "66137",
    "35.05",
    "35.05.01",
)
HOME = Address(
    "Jl. Ijen 7/9",
    "Oro-oro Dowo",
    "Klojen",
    "Kota Malang",
    "Jawa Timur",
    "65119",
    "35.73",
    "35.73.01",
    note="pagar hijau",
)


def order(**changes: Any) -> ShipmentOrder:
    values: dict[str, Any] = {
        "reference": "BLT-0001-1",
        "sender": Party("Kanim Blitar", "+62342801234", OFFICE),
        "receiver": Party("Siti Rahayu", "+6281234567890", HOME),
        "weight_kg": Decimal("0.2"),
        "declared_value": 0,
        "service": "EZ",
    }
    values.update(changes)
    return ShipmentOrder(**values)


# --------------------------------------------------------------------------------------------
# Signing and building


def test_sign_is_base64_of_md5_hex_and_raw_is_the_variant() -> None:
    assert codec.sign('{"a":"b"}', "key") == "Mjg5M2I1ZGU0ZjBjMzdhNzIyOGU0NjNiMWI5OWE3NjY="
    assert codec.sign('{"a":"b"}', "key", "raw") == "KJO13k8MN6cijkY7G5mnZg=="
    assert codec.jms_digest('{"a":"b"}', "key") == "KJO13k8MN6cijkY7G5mnZg=="


def test_create_signs_exactly_the_json_it_sends() -> None:
    form = codec.build_create(order(), CONFIG, NOW).form()
    expected = base64.b64encode(
        hashlib.md5((form["data_param"] + "ORDER-KEY").encode()).hexdigest().encode()
    ).decode()
    assert form["data_sign"] == expected
    assert "\\/" not in form["data_param"] and "Jl. Ijen 7/9" in form["data_param"]
    assert " " not in form["data_param"].split('"')[0]  # compact separators


def test_create_values_are_all_strings_and_match_the_request_schema() -> None:
    body = json.loads(codec.build_create(order(), CONFIG, NOW).data_param)
    item = body["detail"][0]
    assert all(isinstance(v, str) for v in item.values())
    assert schemas.check("couriers/jnt/create_request", body) == []
    assert item["orderid"] == "BLT-0001-1"
    assert (item["destination_code"], item["receiver_area"]) == ("MLG", "MLG001")
    assert item["orderdate"] == "2026-11-02 08:00:00"  # WIB wall clock
    assert item["sendendtime"] == "2026-11-02 16:00:00"
    assert item["weight"] == "0.2" and item["receiver_zip"] == "65119"
    assert item["receiver_addr"].endswith("(pagar hijau)")


def test_non_ascii_is_sent_as_utf8_not_escaped() -> None:
    receiver = Party("Ni Made Ayu Sārī", "+6281234567890", HOME)
    text = codec.build_create(order(receiver=receiver), CONFIG, NOW).data_param
    assert "Sārī" in text and "\\u" not in text


@pytest.mark.parametrize(
    ("kg", "sent"), [("0.2", "0.2"), ("1", "1"), ("1.234", "1.24"), ("10.00", "10")]
)
def test_weight_has_at_most_two_decimals_rounded_up(kg: str, sent: str) -> None:
    assert codec.create_values(order(weight_kg=Decimal(kg)), CONFIG, NOW)["weight"] == sent


def test_unknown_postal_code_is_five_zeros() -> None:
    home = Address("Jl. A", "B", "C", "D", "E", "", "35.73", "35.73.09")
    values = codec.create_values(order(receiver=Party("Siti", "+628123", home)), CONFIG, NOW)
    assert values["receiver_zip"] == "00000"
    assert values["receiver_area"] == "MLG002"  # regency-level area configured by a human


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"reference": "X" * 21}, "orderid"),
        ({"receiver": Party("N" * 31, "+6281234567890", HOME)}, "receiver_name"),
        ({"receiver": Party("Siti", "+62812345678901234", HOME)}, "receiver_phone"),
        ({"sender": Party("S" * 31, "+62342801234", OFFICE)}, "shipper_name"),
        ({"description": "D" * 41}, "goodsdesc"),
    ],
)
def test_field_limits_are_enforced_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(CourierRejected) as refused:
        codec.build_create(order(**change), CONFIG, NOW)
    assert refused.value.code == "field_too_long"
    assert refused.value.reason.startswith(field + ":")
    assert "NNNN" not in str(refused.value)  # the value itself is never repeated


def test_goodsdesc_special_characters_and_unmapped_regions_are_refused() -> None:
    with pytest.raises(CourierRejected, match="goodsdesc"):
        codec.build_create(order(description="PASPOR & DOKUMEN"), CONFIG, NOW)
    away = Address("Jl. A", "B", "C", "D", "E", "80111", "51.71", "51.71.01")
    with pytest.raises(CourierRejected) as refused:
        codec.build_create(order(receiver=Party("Siti", "+628123", away)), CONFIG, NOW)
    assert refused.value.code == "unmapped_destination"


def test_cancel_is_signed_with_the_cancel_key_and_remark_cut_to_30() -> None:
    form = codec.build_cancel("BLT-0001-1", "Pemohon memilih mengambil sendiri di kantor", CONFIG)
    body = json.loads(form.data_param)
    assert body["detail"][0]["remark"] == "Pemohon memilih mengambil send"  # 30 characters
    assert form.data_sign == codec.sign(form.data_param, "CANCEL-KEY")
    assert schemas.check("couriers/jnt/cancel_request", body) == []


def test_track_request_is_one_awb_with_basic_credentials() -> None:
    request = codec.build_track("JO0027364832", CONFIG)
    assert request.body == {"awb": "JO0027364832", "eccompanyid": "OFFICE"}
    assert (request.user, request.password) == ("OFFICE", "TRACK-PW")
    assert codec.split_batch(["JO1", "JO2", "JO1"]) == ["JO1", "JO2"]


def test_find_request_is_jms_signed() -> None:
    request = codec.build_find("BLT-0001-1", CONFIG, NOW)
    biz = request.form["bizContent"]
    assert json.loads(biz)["serialNumber"] == ["BLT-0001-1"]
    assert request.headers["digest"] == codec.jms_digest(biz, "PRIV")
    assert request.headers["timestamp"] == str(int(NOW.timestamp() * 1000))


# --------------------------------------------------------------------------------------------
# Create / cancel answers (business errors inside HTTP 200)


CREATED: dict[str, Any] = {
    "success": True,
    "desc": "Request berhasil",
    "detail": [
        {
            "awb_no": "JO0027364832",
            "orderid": "BLT-0001-1",
            "desCode": "JKT-JKT001",
            "etd": "2-4",
            "status": "Sukses",
        }
    ],
}


def refused(reason: str, success: Any = True) -> dict[str, Any]:
    return {
        "success": success,
        "desc": "Request berhasil",
        "detail": [
            {"orderid": "BLT-0001-1", "status": "Error", "reason": reason, "etd": "No Data"}
        ],
    }


@pytest.mark.parametrize("flag", [True, "true", "TRUE"])
def test_create_success_flag_as_bool_or_string(flag: Any) -> None:
    booking = codec.parse_create({**CREATED, "success": flag}, "BLT-0001-1")
    assert booking.waybill == "JO0027364832" and booking.raw["etd"] == "2-4"


def test_business_error_inside_http_200_is_rejected_with_its_reason() -> None:
    with pytest.raises(CourierRejected) as err:
        codec.parse_create(refused("Alamat penerima tidak lengkap"), "BLT-0001-1")
    assert err.value.code == "rejected" and "Alamat" in err.value.reason


def test_duplicate_orderid_is_outcome_unknown_not_a_failure() -> None:
    with pytest.raises(OutcomeUnknown):
        codec.parse_create(refused("Orderid tidak boleh sama"), "BLT-0001-1")


@pytest.mark.parametrize(
    "reason",
    ["Data signature tidak valid", "Tanda tangan salah", "Username atau api key tidak valid"],
)
def test_signature_and_credential_errors_are_auth_failed(reason: str) -> None:
    with pytest.raises(AuthFailed):
        codec.parse_create(refused(reason), "BLT-0001-1")
    with pytest.raises(AuthFailed):
        codec.parse_create({"success": False, "desc": reason, "detail": []}, "BLT-0001-1")


def test_create_answer_for_another_orderid_or_without_awb_is_invalid() -> None:
    other = {**CREATED, "detail": [{**CREATED["detail"][0], "orderid": "BLT-0002-1"}]}
    with pytest.raises(ResponseInvalid) as err:
        codec.parse_create(other, "BLT-0001-1")
    assert err.value.path == "$.detail[0].orderid"
    no_awb = {**CREATED, "detail": [{"orderid": "BLT-0001-1", "status": "Sukses"}]}
    with pytest.raises(ResponseInvalid, match="AWB"):
        codec.parse_create(no_awb, "BLT-0001-1")


def test_bad_shape_names_the_path_and_not_the_payload() -> None:
    body = {"success": True, "detail": [{"status": 7, "reason": "Siti Rahayu +6281234567890"}]}
    with pytest.raises(ResponseInvalid) as err:
        codec.parse_create(body, "BLT-0001-1")
    assert err.value.path == "$.detail[0].status"
    assert "Siti" not in str(err.value) and "6281" not in str(err.value)


def test_cancel_after_pickup_is_rejected_as_picked_up() -> None:
    with pytest.raises(CourierRejected) as err:
        codec.parse_cancel(refused("Gagal membatalkan, Status pesanan adalah : GOT"), "BLT-0001-1")
    assert err.value.code == "picked_up"


def test_cancel_done_or_already_cancelled_is_fine() -> None:
    done = {
        "success": "true",
        "desc": "Request berhasil",
        "detail": [{"orderid": "BLT-0001-1", "status": "Sukses", "reason": ""}],
    }
    codec.parse_cancel(done, "BLT-0001-1")
    codec.parse_cancel(refused("Status pesanan adalah : CANCEL"), "BLT-0001-1")


def test_find_reads_jms_orders() -> None:
    answer = {
        "code": "1",
        "msg": "success",
        "requestId": "r1",
        "data": [{"txlogisticId": "BLT-0001-1", "billCode": "JO0027364832", "orderStatus": "100"}],
    }
    booking = codec.parse_find(answer, "BLT-0001-1")
    assert booking is not None and booking.waybill == "JO0027364832"
    assert codec.parse_find({**answer, "data": []}, "BLT-0001-1") is None
    with pytest.raises(AuthFailed):
        codec.parse_find({"code": 145003030, "msg": "header signature check failed"}, "x")


# --------------------------------------------------------------------------------------------
# Tracking


TRACKED = {
    "awb": "JO0027364832",
    "orderid": "BLT-0001-1",
    "detail": {
        "shipped_date": "2026-11-02 08:00:00",
        "services_code": "EZ",
        "sender": {"name": "KANIM BLITAR"},
        "receiver": {"name": "SITI RAHAYU"},
        "driver": {"name": "", "phone": ""},
        "delivDriver": {"name": "", "phone": ""},
    },
    "history": [  # newest first, as served
        {
            "date_time": "2026-11-03 13:05:00",
            "city_name": "MALANG",
            "status_code": 200,
            "status": "Paket telah diterima oleh Siti Rahayu (IBU KANDUNG)",
            "receiver": "SITI R",
            "sigPicUrl": "https://pod.example/a.png?sig=1,https://pod.example/b.png?sig=2",
            "electronicSignaturePicUrl": "https://pod.example/s.png?sig=3",
        },
        {
            "date_time": "2026-11-03 11:00:00",
            "city_name": "MALANG",
            "status_code": "150",
            "status": "Paket gagal dikirim: Penerima tidak di tempat",
            "note": "Penerima tidak di tempat",
        },
        {
            "date_time": "2026-11-03 07:40:00",
            "city_name": "MALANG",
            "status_code": "100",
            "status": "Paket akan dikirim ke alamat penerima",
        },
        {
            "date_time": "2026-11-02 18:10:00",
            "city_name": "BLITAR",
            "status_code": "100",
            "status": "Paket akan dikirimkan ke MALANG",
        },
        {
            "date_time": "2026-11-02 15:20:00",
            "city_name": "BLITAR",
            "status_code": "100",
            "status": "Paket telah di pick up oleh Sprinter J&T",
        },
        {
            "date_time": "2026-11-02 08:00:00",
            "city_name": "BLITAR",
            "status_code": "101",
            "status": "Manifes",
        },
        {
            "date_time": "2026-11-02 09:00:00",
            "city_name": "BLITAR",
            "status_code": "999",
            "status": "Kode baru yang belum dipetakan",
        },
    ],
}


def test_track_history_maps_by_code_then_text_oldest_first_in_utc() -> None:
    events = codec.parse_track(TRACKED, "JO0027364832")
    assert [e.status for e in events] == [
        Status.BOOKED,
        None,
        Status.PICKED_UP,
        Status.IN_TRANSIT,
        Status.OUT_FOR_DELIVERY,
        Status.DELIVERY_FAILED,
        Status.DELIVERED,
    ]
    assert events[0].occurred_at == datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 08:00 WIB
    assert events[-1].occurred_at.tzinfo is UTC


def test_unknown_code_is_kept_raw_and_unmapped() -> None:
    unknown = codec.parse_track(TRACKED, "JO0027364832")[1]
    assert unknown.status is None
    assert (unknown.raw_code, unknown.raw_text) == ("999", "Kode baru yang belum dipetakan")
    assert unknown.raw["city_name"] == "BLITAR"


def test_delivered_event_carries_receiver_relation_and_pod_links() -> None:
    delivered = codec.parse_track(TRACKED, "JO0027364832")[-1]
    assert delivered.receiver_name == "SITI R"  # history[].receiver wins over the text
    assert delivered.relation == "IBU KANDUNG"
    assert [a.kind for a in delivered.artefacts] == ["photo", "photo", "signature"]
    failed = codec.parse_track(TRACKED, "JO0027364832")[-2]
    assert failed.reason == "Penerima tidak di tempat" and failed.artefacts == ()


@pytest.mark.parametrize(
    ("text", "who"),
    [
        ("Paket telah diterima oleh Budi (YBS)", ("Budi", "YBS")),
        (
            "Paket telah diterima oleh [Budi Santoso (Orang Serumah)]",
            ("Budi Santoso", "Orang Serumah"),
        ),
        ("Received by【Ani】", ("Ani", "")),
        ("Manifes", ("", "")),
    ],
)
def test_receiver_and_relation_parsed_from_free_text(text: str, who: tuple[str, str]) -> None:
    assert codec.parse_receiver(text) == who


def test_track_errors() -> None:
    assert codec.parse_track({"error_id": "404", "error_message": "Invalid AWB number"}, "x") == []
    with pytest.raises(AuthFailed):
        codec.parse_track({"error_id": 401, "error_message": "Unauthorized"}, "x")
    with pytest.raises(ResponseInvalid) as err:
        codec.parse_track({**TRACKED, "awb": "JO0000000000"}, "JO0027364832")
    assert err.value.path == "$.awb"


def test_track_bad_wall_time_names_the_item() -> None:
    broken = {
        **TRACKED,
        "history": [{"date_time": "03/11/2026", "status": "Manifes", "status_code": "101"}],
    }
    with pytest.raises(ResponseInvalid) as err:
        codec.parse_track(broken, "JO0027364832")
    assert err.value.path == "$.history[0].date_time"


def test_status_tables_hold_no_guesses() -> None:
    assert statuses.legacy_status("100", "Sesuatu yang lain") is None
    assert statuses.legacy_status("150", "Paket ditahan di gudang") is None
    assert statuses.legacy_status("401", "Paket retur telah diterima oleh pengirim") is (
        Status.RETURNED
    )
    assert statuses.jms_status("110", "Parcel damaged at hub") is None
    assert statuses.jms_status("301", "Lost parcel") is Status.LOST
    assert statuses.jms_status("77", "anything") is None


# --------------------------------------------------------------------------------------------
# Properties


text_values = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


@settings(suppress_health_check=[HealthCheck.too_slow])  # a loaded machine draws slowly
@given(
    st.dictionaries(st.sampled_from(["a", "b", "alamat", "nama"]), text_values, min_size=1),
    st.text(min_size=1, max_size=20),
)
def test_signed_json_round_trips_and_verifies(values: dict[str, str], key: str) -> None:
    text = codec.encode_json({"detail": [values]})
    assert json.loads(text) == {"detail": [values]}
    assert (
        codec.sign(text, key)
        == base64.b64encode(hashlib.md5((text + key).encode()).hexdigest().encode()).decode()
    )


wall = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)).map(
    lambda d: d.strftime(codec.WALL_FORMAT)
)
history_item = st.fixed_dictionaries(
    {
        "date_time": wall | st.text(max_size=12),
        "status_code": st.sampled_from(["100", "101", "150", "200", "401", "7"]) | st.integers(),
        "status": st.sampled_from([r.text for r in statuses.LEGACY]) | st.text(max_size=30),
    },
    optional={"receiver": st.text(max_size=10) | st.none(), "note": st.none() | st.text()},
)


@settings(max_examples=150)
@given(st.lists(history_item, max_size=8))
def test_track_parser_is_total_and_orders_events(history: list[dict[str, Any]]) -> None:
    body = {"awb": "JO0027364832", "history": history}
    try:
        events = codec.parse_track(body, "JO0027364832")
    except ResponseInvalid as err:
        assert err.path.startswith("$.history[")
        return
    assert len(events) == len(history)
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
    for event in events:
        assert event.status is None or event.status in {r.status for r in statuses.LEGACY}
        note = str(event.raw.get("note") or "")
        assert event.status == statuses.legacy_status(event.raw_code, event.raw_text, note)


# --------------------------------------------------------------------------------------------
# Registry


def test_registry_builds_jnt_from_valid_settings_and_lists_every_bad_path() -> None:
    from adapters import registry
    from adapters.jnt.adapter import JntAdapter
    from core.clock import ManualClock
    from simulators.jnt import adapter_settings

    good = {**adapter_settings("http://127.0.0.1:1"), "transport": {"max_attempts": 2}}
    adapter = registry.create("jnt", good, clock=ManualClock())
    assert isinstance(adapter, JntAdapter)
    assert adapter.transport.policy.max_attempts == 2
    assert adapter.capabilities.track_batch_size == 1 and adapter.capabilities.push

    bad = {**good, "origin_code": "blitar", "track_url": "ftp://x", "surprise": 1}
    del bad["order_key"]
    with pytest.raises(ValueError) as err:
        registry.create("jnt", bad, clock=ManualClock())
    message = str(err.value)
    for path in ("$.origin_code", "$.track_url", "$.order_key", "$: unknown field(s): surprise"):
        assert path in message
    assert "sim-api-key" not in message and "blitar" not in message
    with pytest.raises(ValueError, match="unknown courier"):
        registry.create("dhl", good, clock=ManualClock())
