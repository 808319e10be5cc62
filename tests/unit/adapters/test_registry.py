"""The registry is the only list of couriers: every courier enum in the JSON Schemas, the
configuration reference and ``courier simulate`` agree with it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import schemas
from adapters import registry
from adapters.base import CourierAdapter
from core.clock import ManualClock
from courier import docs_config


def _courier_enums(node: Any, path: str) -> Iterator[tuple[str, list[Any]]]:
    """Every enum that lists a courier code we know (the schema cannot say which enums are
    courier enums; one that names any registered code must name all of them)."""
    if isinstance(node, dict):
        enum = node.get("enum")
        if isinstance(enum, list) and set(enum) & set(registry.codes()):
            yield path, enum
        for key, child in node.items():
            yield from _courier_enums(child, f"{path}.{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _courier_enums(child, f"{path}[{i}]")


def test_every_courier_enum_in_the_schemas_lists_exactly_the_registered_couriers() -> None:
    found = {
        f"{name}{path}": enum
        for name in schemas.names()
        for path, enum in _courier_enums(schemas.load(name), "$")
    }
    # office courier, config couriers table, manifest courier, the API's courier parameter
    assert len(found) >= 4, found
    for where, enum in found.items():
        assert sorted(enum) == sorted(registry.codes()), where


@pytest.mark.parametrize("code", registry.codes())
def test_each_descriptor_is_complete_and_builds_its_adapter(code: str) -> None:
    courier = registry.descriptor(code)
    assert courier.code == code
    assert courier.names.id and courier.names.en
    assert isinstance(courier.settings_schema, str)
    assert courier.settings_schema in schemas.names()
    assert courier.simulator.startswith("simulators.")  # a string: adapters never import it
    assert courier.simulator_port > 0
    assert f"**`[couriers.{code}]`**" in docs_config.render()


def test_an_adapter_offers_no_more_than_its_descriptor_says() -> None:
    from simulators import jnt, posind

    sims = {"jnt": jnt, "posind": posind}
    built: dict[str, CourierAdapter] = {
        code: registry.create(code, sim.adapter_settings("http://127.0.0.1:1"), clock=ManualClock())
        for code, sim in sims.items()
    }
    for code, adapter in built.items():
        most = registry.descriptor(code).capabilities
        got = adapter.capabilities
        for flag in ("cancel", "push", "find", "dedupes_reference"):
            assert getattr(most, flag) or not getattr(got, flag), (code, flag)


def test_an_unknown_code_is_refused_and_shown_as_stored() -> None:
    with pytest.raises(ValueError, match="unknown courier 'dhl'"):
        registry.descriptor("dhl")
    assert registry.name("dhl") == "dhl"
    assert registry.name("jnt") == "J&T Express"
