"""Every exception kind and every delivery state can be explained to staff in both languages."""

from __future__ import annotations

import pytest

from courier.domain.exception_kinds import NEXT_STEPS, STATE_TEXTS, ExceptionKind, next_step
from courier.domain.states import DeliveryState


@pytest.mark.parametrize("kind", list(ExceptionKind))
def test_every_kind_has_a_next_step_in_both_languages(kind: ExceptionKind) -> None:
    text = NEXT_STEPS[kind]
    assert text.id.strip() and text.en.strip()
    assert text.id != text.en
    assert text.in_language("id") == text.id and text.in_language("en") == text.en


@pytest.mark.parametrize("state", list(DeliveryState))
def test_every_delivery_state_has_both_texts(state: DeliveryState) -> None:
    text = STATE_TEXTS[state]
    assert text.id.strip() and text.en.strip() and text.id != text.en


def test_no_text_for_a_kind_that_does_not_exist() -> None:
    assert set(NEXT_STEPS) == set(ExceptionKind)
    with pytest.raises(ValueError):
        next_step("made_up_kind")
