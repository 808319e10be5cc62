"""The README's configuration reference is generated from the JSON Schemas: a schema
change without regenerating it fails here."""

from __future__ import annotations

from pathlib import Path

import schemas
from adapters import registry
from courier import docs_config

DOC = Path(__file__).resolve().parents[2] / "README.md"


def test_the_configuration_reference_is_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert docs_config.updated(text) == text, "run `python -m courier.docs_config`"


def test_every_configuration_key_and_its_environment_variable_is_documented() -> None:
    block = docs_config.render()
    for key, node in schemas.load("config")["properties"].items():
        assert f"`{key}`" in block
        if "properties" not in node:  # a section has no variable of its own, its keys do
            assert f"`COURIER_{key.upper()}`" in block
        for sub, sub_node in node.get("properties", {}).items():
            variable = f"COURIER_{key.upper()}__{sub.upper()}"
            if "properties" not in sub_node:
                assert f"`{variable}`" in block
            for leaf in sub_node.get("properties", {}):  # a nested section ([notify.email])
                assert f"`{variable}__{leaf.upper()}`" in block
    for code in registry.codes():
        for key in schemas.load(f"couriers/{code}/settings")["properties"]:
            assert f"`couriers.{code}.{key}`" in block


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "ops.md"
    stale.write_text(f"# ops\n\n{docs_config.BEGIN}\nold\n{docs_config.END}\n", encoding="utf-8")
    assert docs_config.main([str(stale), "--check"]) == 1
    assert docs_config.main([str(stale)]) == 0
    assert docs_config.main([str(stale), "--check"]) == 0
    assert stale.read_text(encoding="utf-8").startswith("# ops\n\n")
