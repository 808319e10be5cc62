from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from courier.domain.references import (
    MAX_LENGTH,
    client_reference,
    is_client_reference,
    office_codes_compatible,
)

SHAPE = re.compile(r"[A-Z0-9]{1,20}")


def test_numeric_application_numbers_stay_readable() -> None:
    assert client_reference("BLT", "2024060512345", 1) == "BLT202406051234501"
    assert client_reference("BLT", "2024060512345", 12) == "BLT202406051234512"


def test_other_application_numbers_are_hashed_to_fit() -> None:
    ref = client_reference("BLT", "BLT-2024/06/05-12345", 1)
    assert len(ref) == MAX_LENGTH and ref.startswith("BLTZ") and ref.endswith("01")
    assert SHAPE.fullmatch(ref)
    # too long for the room left after the office code: hashed as well
    long_digits = "1" * 16
    assert client_reference("BLT", long_digits, 1).startswith("BLTZ")


def test_deterministic() -> None:
    assert client_reference("MLG", "abc/1", 3) == client_reference("MLG", "abc/1", 3)


def test_case_and_punctuation_are_not_folded_together() -> None:
    refs = {client_reference("BLT", n, 1) for n in ("a-1", "A-1", "a1", "A1", "1")}
    assert len(refs) == 5


@pytest.mark.parametrize(
    ("office", "app", "attempt"),
    [
        ("blt", "1", 1),
        ("", "1", 1),
        ("BLITAR1", "1", 1),
        ("BLT", "", 1),
        ("BLT", "1", 0),
        ("BLT", "1", 100),
        ("BL-T", "1", 1),
    ],
)
def test_bad_inputs(office: str, app: str, attempt: int) -> None:
    with pytest.raises(ValueError):
        client_reference(office, app, attempt)


def test_is_client_reference() -> None:
    assert is_client_reference(client_reference("BLT", "x", 1))
    assert not is_client_reference("blt1")
    assert not is_client_reference("A" * 21)


def test_office_codes_compatible() -> None:
    assert office_codes_compatible("BLT", "MLG")
    assert not office_codes_compatible("BL", "BL1")
    # the collision the rule prevents
    assert client_reference("BL", "1234", 1) == client_reference("BL1", "234", 1)


offices = st.from_regex(r"[A-Z0-9]{1,6}", fullmatch=True)
app_numbers = st.one_of(
    st.from_regex(r"[0-9]{1,20}", fullmatch=True),
    st.text(min_size=1, max_size=40),
)
attempts = st.integers(min_value=1, max_value=99)


@given(office=offices, app=app_numbers, attempt=attempts)
def test_shape(office: str, app: str, attempt: int) -> None:
    ref = client_reference(office, app, attempt)
    assert SHAPE.fullmatch(ref) and len(ref) <= MAX_LENGTH
    assert ref.startswith(office) and ref.endswith(f"{attempt:02d}")


@given(
    office=offices,
    inputs=st.lists(st.tuples(app_numbers, attempts), min_size=2, max_size=50, unique=True),
)
def test_distinct_inputs_give_distinct_references_within_an_office(
    office: str, inputs: list[tuple[str, int]]
) -> None:
    refs = [client_reference(office, app, attempt) for app, attempt in inputs]
    assert len(set(refs)) == len(refs)
