from __future__ import annotations

import pytest

from courier.domain.regions import (
    districts_of,
    lookup_district,
    lookup_province,
    lookup_regency,
    lookup_village,
    normalise_code,
    postal_codes_of,
    provinces,
    regencies_of,
    validate_address,
    villages_of,
)

# Kelurahan Klojen, Kecamatan Klojen, Kota Malang, Jawa Timur: postal code 65111
GOOD = {
    "province_code": "35",
    "regency_code": "35.73",
    "district_code": "35.73.02",
    "village_code": "35.73.02.1001",
    "postal_code": "65111",
}


def bad(**changes: str) -> dict[str, str]:
    errors = validate_address(**{**GOOD, **changes})
    return {e.path: e.message for e in errors}


def test_lookups() -> None:
    regency = lookup_regency("35.73")
    assert regency is not None
    assert regency.name == "KOTA MALANG"
    assert regency.province.code == "35" and regency.province.name == "JAWA TIMUR"
    assert lookup_regency("3573") == regency
    assert lookup_regency("35.99") is None
    province = lookup_province("35")
    assert province is not None and province.name == "JAWA TIMUR"
    district = lookup_district("35.73.02")
    assert district is not None and district.name == "Klojen"
    village = lookup_village("35.73.02.1001")
    assert village is not None and village.postal_code == "65111"


def test_dataset_is_current_and_complete() -> None:
    # Kepmendagri 2025: 38 provinces, including the 2022 Papua provinces
    assert len(provinces()) == 38
    assert lookup_province("96") is not None  # Papua Barat Daya
    assert len(regencies_of("35")) == 38  # East Java: 29 regencies + 9 cities
    assert [d.code for d in districts_of("35.73")] == [f"35.73.0{i}" for i in range(1, 6)]
    villages = villages_of("35.73.02")
    assert len(villages) == 11 and all(v.district_code == "35.73.02" for v in villages)
    assert postal_codes_of("35.73.02") >= {"65111", "65119"}


def test_normalise_code() -> None:
    assert normalise_code("3573021001") == "35.73.02.1001"
    assert normalise_code(" 35.73 ") == "35.73"
    assert normalise_code("357") is None
    assert normalise_code("ab") is None


def test_a_consistent_address_passes() -> None:
    assert validate_address(**GOOD) == []
    # another postal code of the same district is accepted (zones do not follow village lines)
    assert validate_address(**{**GOOD, "postal_code": "65119"}) == []


def test_district_outside_regency() -> None:
    other = lookup_village("35.05.02.2001")  # a village in Kabupaten Blitar
    assert other is not None
    assert bad(district_code="35.05.02", village_code=other.code) == {
        "$.address.district_code": "district 35.05.02 is not in regency 35.73",
        "$.address.postal_code": "postal code 65111 is not used in district 35.05.02 "
        f"(village 35.05.02.2001: {other.postal_code})",
    }


def test_regency_outside_province() -> None:
    assert bad(province_code="33") == {
        "$.address.regency_code": "regency 35.73 is not in province 33"
    }


def test_village_outside_district() -> None:
    errors = bad(village_code="35.73.01.1001")
    assert errors["$.address.village_code"] == "village 35.73.01.1001 is not in district 35.73.02"


@pytest.mark.parametrize("postal", ["6511", "651111", "6511a", ""])
def test_postal_code_shape(postal: str) -> None:
    assert bad(postal_code=postal) == {"$.address.postal_code": "postal code must be 5 digits"}


def test_postal_code_of_another_city() -> None:
    message = bad(postal_code="66111")["$.address.postal_code"]
    assert message == (
        "postal code 66111 is not used in district 35.73.02 (village 35.73.02.1001: 65111)"
    )


def test_unknown_and_malformed_codes() -> None:
    errors = bad(regency_code="35.99", district_code="x", village_code="35.73.02.9999")
    assert errors["$.address.regency_code"] == "regency 35.99 does not exist"
    assert errors["$.address.district_code"] == "district code has the wrong shape"
    assert errors["$.address.village_code"] == "village 35.73.02.9999 does not exist"
    # nothing known below the province: the postal code is only checked for its shape
    assert "$.address.postal_code" not in errors
    assert bad(province_code="35.73")["$.address.province_code"] == (
        "province code has the wrong shape"
    )


def test_unknown_village_falls_back_to_district_postal_codes() -> None:
    assert bad(village_code="35.73.02.9999", postal_code="65112") == {
        "$.address.village_code": "village 35.73.02.9999 does not exist"
    }
    errors = bad(village_code="35.73.02.9999", postal_code="60111")
    assert errors["$.address.postal_code"] == "postal code 60111 is not used in district 35.73.02"


def test_custom_prefix() -> None:
    errors = validate_address(**{**GOOD, "postal_code": "1"}, prefix="$.delivery")
    assert [e.path for e in errors] == ["$.delivery.postal_code"]
