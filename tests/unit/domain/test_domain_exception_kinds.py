"""Every exception kind and every delivery state can be explained to staff in both languages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from courier.domain.exception_kinds import NEXT_STEPS, STATE_TEXTS, ExceptionKind, next_step
from courier.domain.states import DeliveryState

ROOT = Path(__file__).resolve().parents[3]
SCHEMAS = ROOT / "schemas" / "api"


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


@pytest.mark.parametrize(
    ("schema", "pointer"),
    [
        ("dispatch_queue.json", ("properties", "items", "items", "properties", "kind")),
        ("dispatch_delivery.json", ("properties", "open_items", "items", "properties", "kind")),
    ],
)
def test_the_api_lists_exactly_the_kinds_the_code_can_open(
    schema: str, pointer: tuple[str, ...]
) -> None:
    node = json.loads((SCHEMAS / schema).read_text())
    for key in pointer:
        node = node[key]
    assert node["enum"] == [k.value for k in ExceptionKind]


def test_no_use_case_opens_an_item_of_a_free_string_kind() -> None:
    # mypy refuses a str where ExceptionKind is expected; this catches a cast or an Any
    pattern = re.compile(r"\bkind\s*=\s*[f]?\"")
    offenders = []
    for path in sorted((ROOT / "courier" / "services").glob("*.py")):
        source = path.read_text()
        for call in re.finditer(r"(open_exception|_to_person)\((.*?)\n    \)", source, re.S):
            if pattern.search(call.group(2)):
                offenders.append(f"{path.name}: {call.group(0)[:60]}")
    assert not offenders
