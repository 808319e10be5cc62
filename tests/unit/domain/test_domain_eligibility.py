from __future__ import annotations

import pytest

from courier.domain.eligibility import PRIORITY_KINDS, check_eligibility

BLITAR_HOME = ("35.05", "35.72")  # Kabupaten Blitar, Kota Blitar


def test_outside_home_area_is_eligible() -> None:
    result = check_eligibility(
        home_regency_codes=BLITAR_HOME, destination_regency_code="35.73", priority_kind=None
    )
    assert result.ok and result.code == "outside_home_area"
    assert "luar wilayah" in result.message_id and "outside" in result.message_en


def test_home_area_is_refused_with_a_reason_in_both_languages() -> None:
    result = check_eligibility(
        home_regency_codes=BLITAR_HOME, destination_regency_code="35.72", priority_kind=None
    )
    assert not result.ok and result.code == "home_area"
    assert "loket" in result.message_id and "30 hari" in result.message_id
    assert "counter" in result.message_en and "30 days" in result.message_en


@pytest.mark.parametrize("kind", sorted(PRIORITY_KINDS))
def test_priority_cases_are_eligible_at_home(kind: str) -> None:
    result = check_eligibility(
        home_regency_codes=BLITAR_HOME, destination_regency_code="35.05", priority_kind=kind
    )
    assert result.ok and result.code == "priority_case"
    assert "prioritas" in result.message_id and "priority" in result.message_en


def test_priority_outside_home_reports_the_area_reason() -> None:
    result = check_eligibility(
        home_regency_codes=BLITAR_HOME, destination_regency_code="35.04", priority_kind="sick"
    )
    assert result.ok and result.code == "outside_home_area"


def test_unknown_priority_kind_is_bad_data() -> None:
    with pytest.raises(ValueError, match="unknown priority kind"):
        check_eligibility(
            home_regency_codes=BLITAR_HOME, destination_regency_code="35.05", priority_kind="vip"
        )
