"""Which exception items a delivery's move makes stale (courier/domain/item_causes.py), and the
name search key (courier/domain/text.py)."""

from __future__ import annotations

import pytest

from courier.domain.exception_kinds import ExceptionKind as K
from courier.domain.item_causes import GONE_WHEN, gone_when
from courier.domain.states import FINAL_DELIVERY_STATES
from courier.domain.states import DeliveryState as S
from courier.domain.text import search_key


def test_a_passport_in_its_holders_hands_closes_all_but_what_outlives_it() -> None:
    for state in (S.HANDED_OVER, S.COLLECTED_AT_OFFICE):
        closed = set(gone_when(state))
        assert {K.STUCK, K.UNCONFIRMED, K.DEADLINE_WARNING, K.RETURNED} <= closed
        assert not {K.SHIPMENT_LOST, K.CANCEL_AT_COURIER, K.POD_MISSING} & closed


def test_a_new_attempt_closes_what_stopped_the_old_one_but_not_a_cancel_at_the_counter() -> None:
    closed = set(gone_when(S.QUEUED))
    assert {K.BOOKING_REJECTED, K.BOOKING_UNKNOWN, K.RETURNED, K.HANDOVER_REFUSED} <= closed
    assert K.CANCEL_AT_COURIER not in closed and K.SHIPMENT_LOST not in closed
    # about the delivery, not the attempt: their items would not open again for a new attempt
    assert not {K.ROUTING, K.ADDRESS_INCOMPLETE, K.BOOKING_FAULT} & closed
    assert {K.ROUTING, K.ADDRESS_INCOMPLETE, K.BOOKING_FAULT} <= set(gone_when(S.SHIPPING))


def test_needs_attention_closes_nothing_and_every_final_state_says_what_it_closes() -> None:
    assert gone_when(S.NEEDS_ATTENTION) == ()
    assert set(GONE_WHEN) >= FINAL_DELIVERY_STATES


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("Siti Nur'aini", "siti nur aini"),
        ("  SITI   nur-AINI ", "siti nur aini"),
        ("José Ñoño", "jose nono"),
        ("Ａｇｕｓ", "agus"),  # full-width letters from a phone keyboard
        ("'=cmd", "cmd"),
        ("", ""),
    ],
)
def test_search_key_ignores_case_accents_and_punctuation(typed: str, key: str) -> None:
    assert search_key(typed) == key
