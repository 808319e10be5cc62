"""What a J&T create answer means for booking (issue 9): the duplicate answer says the order
exists, a refusal keeps J&T's reason, and anything that is neither is not understood (never
guessed to be a refusal)."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import CourierRejected, DuplicateReference, OutcomeUnknown, ResponseInvalid
from adapters.jnt import codec


def _answer(item: dict[str, Any], success: Any = True) -> dict[str, Any]:
    return {"success": success, "desc": "Request berhasil", "detail": [item]}


def test_the_duplicate_answer_means_the_order_exists() -> None:
    body = _answer({"orderid": "R1", "status": "Error", "reason": "Orderid tidak boleh sama"})
    with pytest.raises(DuplicateReference) as info:
        codec.parse_create(body, "R1")
    assert isinstance(info.value, OutcomeUnknown)  # still reconciled by reference


def test_a_refusal_keeps_the_couriers_reason() -> None:
    body = _answer({"orderid": "R1", "status": "Error", "reason": "receiver_phone tidak valid"})
    with pytest.raises(CourierRejected) as info:
        codec.parse_create(body, "R1")
    assert info.value.reason == "receiver_phone tidak valid"


@pytest.mark.parametrize("status", ["Pending", "", "Diproses"])
def test_an_item_neither_success_nor_error_is_not_understood(status: str) -> None:
    body = _answer({"orderid": "R1", "status": status, "reason": "?"})
    with pytest.raises(ResponseInvalid) as info:
        codec.parse_create(body, "R1")
    assert info.value.path == "$.detail[0].status"
