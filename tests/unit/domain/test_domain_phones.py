from __future__ import annotations

import pytest

from courier.domain.phones import is_mobile, to_e164


@pytest.mark.parametrize(
    "raw",
    ["081234567890", "0812-3456-7890", "+62 812 3456 7890", "6281234567890", " 0812 3456 7890 "],
)
def test_indonesian_mobile_forms(raw: str) -> None:
    assert to_e164(raw) == "+6281234567890"


def test_landline_and_foreign_numbers() -> None:
    assert to_e164("(0342) 801234") == "+62342801234"  # Blitar area code
    assert to_e164("+65 6123 4567") == "+6561234567"
    assert to_e164("6123 4567", region="SG") == "+6561234567"


@pytest.mark.parametrize("raw", ["", "   ", "abc", "08123", "12", "+62 812 3456 7890 1234"])
def test_invalid_numbers_raise_without_echoing_them(raw: str) -> None:
    with pytest.raises(ValueError) as info:
        to_e164(raw)
    message = str(info.value)
    assert "phone number" in message
    digits = "".join(c for c in raw if c.isdigit())
    assert not digits or digits not in message


def test_is_mobile() -> None:
    assert is_mobile(to_e164("081234567890"))
    assert not is_mobile(to_e164("(0342) 801234"))
