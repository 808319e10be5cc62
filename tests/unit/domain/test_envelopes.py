"""Seal numbers as the office writes them, and what printed sheets mask."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from courier.domain.envelopes import mask_id_number, mask_name, normalise_seal


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("SEAL-000123", "SEAL000123"),
        (" seal 000 123 ", "SEAL000123"),
        ("seal_000.123/", "SEAL000123"),
        ("ab-1", None),  # three characters remain
        ("SEAL*1234", None),
        ("", None),
        ("X" * 41, None),
    ],
)
def test_a_seal_is_one_number_however_it_is_typed(raw: str, stored: str | None) -> None:
    assert normalise_seal(raw) == stored


@given(st.from_regex(r"[A-Za-z0-9]{4,40}", fullmatch=True), st.sampled_from([" ", "-", ""]))
def test_normalising_is_idempotent_and_ignores_separators(text: str, sep: str) -> None:
    typed = sep.join(text)
    once = normalise_seal(typed)
    assert once == text.upper()
    assert normalise_seal(once) == once


def test_names_and_id_numbers_are_masked() -> None:
    assert mask_name("Siti Rahayu Wulandari") == "S*** R***** W********"
    assert mask_name("  Budi  ") == "B***"
    assert mask_id_number("3505 1234 5678 0001") == "************0001"
    assert mask_id_number("A12345") == "****45"
    assert "1234" not in mask_id_number("3505123456780001")[:12]
