"""Text at the boundary (issue 10): the one rule of courier.domain.text, and the JSON Schemas and
the server agreeing on every field, so a schema never accepts what the server then refuses."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas
from courier.domain import regions, text
from courier.domain.phones import to_e164
from courier.web.manifests import signature_png

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))


# ---------------------------------------------------------------------------------------------
# The rule


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Siti Rahayu\ud800", text.LONE_SURROGATE),
        ("\udfffSiti", text.LONE_SURROGATE),
        ("Siti\x00Rahayu", text.CONTROL_OR_NEWLINE),
        ("Siti\tRahayu", text.CONTROL_OR_NEWLINE),
        ("Siti\nRahayu", text.CONTROL_OR_NEWLINE),
        ("Siti\rRahayu", text.CONTROL_OR_NEWLINE),
        ("Siti\x85Rahayu", text.CONTROL_OR_NEWLINE),
        ("Siti\u2028Rahayu", text.CONTROL_OR_NEWLINE),
        ("Budi\u202eosotnaS", text.DIRECTION),
        ("\u2066Budi\u2069", text.DIRECTION),
    ],
)
def test_one_line_text_is_refused_with_a_field_error(value: str, message: str) -> None:
    cleaned, errors = text.clean(value, "$.applicant_name")
    assert cleaned == value and [(e.path, e.message) for e in errors] == [
        ("$.applicant_name", message)
    ]
    assert value not in message  # the message never repeats the value


def test_free_text_allows_newlines_only() -> None:
    assert text.clean("KK dicek\nistri pemohon", "$.reason", multiline=True)[1] == []
    for bad in ("a\tb", "a\rb", "a\x1bb", "a\u2029b", "a\ud800"):
        assert text.clean(bad, "$.reason", multiline=True)[1], repr(bad)


def test_text_is_nfc_normalised() -> None:
    decomposed = "Jose\u0301 Sa\u0301nchez"
    cleaned, errors = text.clean(decomposed, "$.applicant_name")
    assert errors == [] and cleaned == "José Sánchez" == unicodedata.normalize("NFC", decomposed)
    assert text.clean_name(decomposed, "$.n")[0] == "José Sánchez"


@pytest.mark.parametrize(
    "value",
    ["", "   ", "\u200b", "\u200b\u200c\u200d", "\ufeff", "\u2060\u00ad", "\u3164", "\u115f\u1160"],
)
def test_names_of_invisible_characters_only_are_refused(value: str) -> None:
    _, errors = text.clean_name(value, "$.applicant_name")
    assert [(e.path, e.message) for e in errors] == [("$.applicant_name", text.INVISIBLE)]


# format characters that are drawn (Unicode's Prepended_Concatenation_Mark): visible
DRAWN_FORMAT = {*range(0x600, 0x606), 0x6DD, 0x70F, 0x890, 0x891, 0x8E2}


def test_every_invisible_or_space_character_of_the_bmp_is_not_visible() -> None:
    """The one list of invisible characters (shared with the schemas) misses none of Unicode's
    format characters and spaces: a name made of any of them is refused."""
    for cp in range(0x10000):
        char = chr(cp)
        if unicodedata.category(char) in ("Cf", "Zs", "Zl", "Zp") and cp not in DRAWN_FORMAT:
            assert text.visible_count(char) == 0 or text.problem(char), f"U+{cp:04X}"


def test_sanitise_keeps_courier_text_storable() -> None:
    assert text.sanitise("Paket\x00 gagal\ud800\r\ndikirim") == "Paket  gagal\ufffd \ndikirim"
    assert "\n" not in text.sanitise("a\nb", multiline=False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Siti Rahayu", "Siti Rahayu"),
        (None, ""),
        (42, "42"),
    ],
)
def test_csv_cells_never_start_a_formula(value: object, expected: str) -> None:
    assert text.csv_cell(value) == expected


@pytest.mark.parametrize(
    ("said", "kept", "hidden"),
    [
        (
            "Paket gagal dikirim: Penerima tidak di rumah, hubungi 0812-3456-7890",
            ["Penerima tidak di rumah", "hubungi"],
            ["0812-3456-7890"],
        ),
        (
            "Received by【Siti Rahayu Wulandari】(YBS)",
            ["Received by", "(YBS)"],
            ["Siti", "Rahayu", "Wulandari"],
        ),
        (
            "Alamat tidak ditemukan: Jl. Borobudur No. 12, RT 03/RW 05, cari Bu Kartika",
            ["Alamat tidak ditemukan"],
            ["Borobudur", "No. 12", "03/RW 05", "Kartika"],
        ),
        (
            "rumah kosong, tetangga (pak rahayu) bilang pindah; tel +62 813 9876 5432",
            ["rumah kosong", "tetangga"],
            ["rahayu", "9876"],
        ),
    ],
)
def test_courier_free_text_is_masked(said: str, kept: list[str], hidden: list[str]) -> None:
    masked = text.mask_personal(said, ["Siti Rahayu Wulandari", "Jl. Borobudur No. 12"])
    assert all(k in masked for k in kept), masked
    assert not [h for h in hidden if h in masked], masked


def test_our_own_item_texts_survive_masking() -> None:
    for own in (
        "no courier event since 2026-11-02T10:00:00+00:00 while in_transit",
        "the courier's delivery attempt failed: Rumah kosong",
        "jnt sent code '999' that the status table does not know",
    ):
        assert text.mask_personal(own) == own


APPLICATION = {
    "applicant_name": "Siti Rahayu",
    "date_of_birth": "1984-03-17",
    "phone": "0812345678",
}
ADDRESS = {
    "street": "Jl. Borobudur No. 12",
    "province_code": "35",
    "regency_code": "35.73",
    "district_code": "35.73.01",
    "village_code": "35.73.01.1001",
    "postal_code": "65126",
}


# ---------------------------------------------------------------------------------------------
# JSON Schema patterns mean what JSON Schema says: "$" is the end of the text


@pytest.mark.parametrize(
    ("schema", "body", "path"),
    [
        (
            "api/manifest_seals",
            {"items": [{"shipment_id": 1, "seal_number": "S" * 40 + "\n"}]},
            "$.items[0].seal_number",
        ),
        ("api/track_confirm", {"passport_no": "X1234567\n"}, "$.passport_no"),
        # through a $ref to another file too (common/address.json)
        (
            "api/delivery_request",
            {"address": {**ADDRESS, "postal_code": "65126\n"}},
            "$.address.postal_code",
        ),
        (
            "api/application_put",
            {"applicant_name": "Siti", "date_of_birth": "1984-03-17\n", "phone": "081234567890"},
            "$.date_of_birth",
        ),
        (
            "api/application_put",
            {"applicant_name": "Siti", "date_of_birth": "1984-03-17", "phone": "081234567890\n"},
            "$.phone",
        ),
    ],
)
def test_a_trailing_newline_never_passes_a_pattern(schema: str, body: Any, path: str) -> None:
    assert path in {e.path for e in schemas.check(schema, body)}


def test_python_pattern_reads_dollar_as_the_end() -> None:
    assert schemas.python_pattern(r"^[0-9]{5}$") == r"^[0-9]{5}\Z"
    assert schemas.python_pattern(r"^a\$[$]$") == r"^a\$[$]\Z"
    assert re.search(schemas.python_pattern(r"^[0-9]{5}$"), "12345\n") is None


# ---------------------------------------------------------------------------------------------
# The schemas refuse what the server refuses (issue 10's list, then field by field)


def _refused(schema: str, body: dict[str, Any], path: str) -> bool:
    return path in {e.path for e in schemas.check(schema, body)}


@pytest.mark.parametrize(
    ("schema", "body", "path"),
    [
        ("api/application_put", {**APPLICATION, "phone": "000000"}, "$.phone"),
        ("api/application_put", {**APPLICATION, "phone": "0342801234"}, "$.phone"),
        ("api/application_put", {**APPLICATION, "date_of_birth": "0000-00-00"}, "$.date_of_birth"),
        ("api/application_put", {**APPLICATION, "date_of_birth": "1850-01-01"}, "$.date_of_birth"),
        ("api/application_put", {**APPLICATION, "applicant_name": "\u200b"}, "$.applicant_name"),
        (
            "api/application_put",
            {**APPLICATION, "applicant_name": "Si\u202eti"},
            "$.applicant_name",
        ),
        (
            "api/application_ready",
            {"issued_at": "0000-00-00T00:00:00Z", "passport_no": "X1234567"},
            "$.issued_at",
        ),
        (
            "api/application_ready",
            {"issued_at": "2026-02-30T10:00:00+07:00", "passport_no": "X1234567"},
            "$.issued_at",
        ),
        ("api/dispatch_review", {"approve": True, "reason": "\x01\x02\x03\x04"}, "$.reason"),
        ("api/dispatch_review", {"approve": True, "reason": "ok\x1b[2Jcleared"}, "$.reason"),
        ("api/dispatch_review", {"approve": True, "reason": "\u200b\u200b\u200b"}, "$.reason"),
        (
            "api/manifest_handover",
            {"courier_agent_name": "Budi", "courier_signature": "R0lGODlhAQABAAAAACw="},
            "$.courier_signature",
        ),
        (
            "api/manifest_handover",
            {"courier_agent_name": "Bu\tdi", "courier_signature": "iVBORw0KGgoAAAAN"},
            "$.courier_agent_name",
        ),
    ],
)
def test_the_schema_refuses_what_the_server_refuses(
    schema: str, body: dict[str, Any], path: str
) -> None:
    assert _refused(schema, body, path)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("province_code", "00"),
        ("regency_code", "00.00"),
        ("regency_code", "35.00"),
        ("district_code", "35.73.00"),
        ("village_code", "35.73.01.0000"),
        ("postal_code", "00000"),
        ("note", "pagar\x00hijau"),
        ("street", "Jl. Merdeka\n5"),
    ],
)
def test_the_address_schema_refuses_impossible_codes(field: str, value: str) -> None:
    body = {"address": {**ADDRESS, field: value}}
    assert f"$.address.{field}" in {
        e.path for e in schemas.check("api/delivery_request", body) if "address" in e.path
    }


def test_province_codes_are_the_dataset_s() -> None:
    enum = schemas.load("common/address")["properties"]["province_code"]["enum"]
    assert enum == sorted(regions._index().provinces)


def test_text_fields_use_the_one_rule() -> None:
    fields = {
        ("api/application_put", "applicant_name"): text.NAME_PATTERN,
        ("common/address", "street"): text.NAME_PATTERN,
        ("common/address", "note"): text.FREE_TEXT_PATTERN,
        ("api/dispatch_review", "reason"): text.text_pattern(visible=3, multiline=True),
        ("api/manifest_handover", "courier_agent_name"): text.text_pattern(visible=2),
    }
    for (name, prop), pattern in fields.items():
        assert schemas.load(name)["properties"][prop]["pattern"] == pattern, (name, prop)


# Each text field: what the server does with it (besides the schema), and its schema path
def _server_name(value: str, visible: int = 1, multiline: bool = False, most: int = 120) -> bool:
    _, errors = text.clean(value, "$.x", multiline=multiline)
    return not errors and text.visible_count(value) >= visible and len(value) <= most


_ALPHABET = st.sampled_from(
    [
        *"aZ9 .-'é",
        *["\u0301", "\n", "\t", "\x00", "\x7f", "\x9f", "\u00a0", "\u200b", "\u200d", "\u202e"],
        *["\u2066", "\u2028", "\ufeff", "\u3164", "\u2800", "\u00ad", "\u061c", "😀"],
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=st.text(_ALPHABET, max_size=8))
def test_schema_and_server_agree_on_every_text_field(value: str) -> None:
    cases = [
        ("api/application_put", {**APPLICATION, "applicant_name": value}, "$.applicant_name", 1, 0),
        ("api/manifest_handover", {"courier_agent_name": value}, "$.courier_agent_name", 2, 0),
        ("api/dispatch_review", {"approve": True, "reason": value}, "$.reason", 3, 1),
        ("api/delivery_request", {"address": {**ADDRESS, "note": value}}, "$.address.note", 0, 1),
        (
            "api/delivery_request",
            {"address": {**ADDRESS, "street": value}},
            "$.address.street",
            1,
            0,
        ),
    ]
    for schema, body, path, visible, multiline in cases:
        bounds = {e.path for e in schemas.check(schema, body) if "characters" in e.message}
        if path in bounds:
            continue  # too short or long for the field: a length rule both sides share
        schema_ok = path not in {e.path for e in schemas.check(schema, body)}
        assert schema_ok == _server_name(value, visible, bool(multiline), 500), (path, value)


def _from_pattern(schema: str, prop: str) -> st.SearchStrategy[str]:
    pattern = schemas.load(schema)["properties"][prop]["pattern"]
    return st.from_regex(schemas.python_pattern(pattern), fullmatch=True)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(phone=_from_pattern("api/application_put", "phone"))
def test_every_schema_valid_phone_is_a_valid_number(phone: str) -> None:
    if schemas.check("api/application_put", {**APPLICATION, "phone": phone}):
        return  # too long for maxLength
    assert to_e164(phone).startswith("+628")


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=_from_pattern("api/application_put", "date_of_birth"))
def test_every_schema_valid_date_of_birth_is_a_date_the_server_reads(value: str) -> None:
    if not schemas.check("api/application_put", {**APPLICATION, "date_of_birth": value}):
        assert date.fromisoformat(value) >= date(1900, 1, 1)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=_from_pattern("api/application_ready", "issued_at"))
def test_every_schema_valid_issue_time_is_a_time_the_server_reads(value: str) -> None:
    body = {"issued_at": value, "passport_no": "X1234567"}
    if not schemas.check("api/application_ready", body):
        assert datetime.fromisoformat(value).tzinfo is not None


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=_from_pattern("api/manifest_handover", "courier_signature"))
def test_every_schema_valid_signature_is_a_png_the_server_takes(value: str) -> None:
    body = {"courier_agent_name": "Budi", "courier_signature": value}
    if not schemas.check("api/manifest_handover", body):
        assert signature_png(value).startswith(PNG[:8])


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    province=st.sampled_from(schemas.load("common/address")["properties"]["province_code"]["enum"])
)
def test_every_schema_valid_province_exists(province: str) -> None:
    assert regions.lookup_province(province) is not None
