"""JSON Schema (Draft 2020-12) files for every boundary, and one way to check a value against them.

Schemas are addressed by their path under this folder without ``.json``: ``"api/opt_in"``,
``"config"``, ``"couriers/jnt/create_response"``. A schema may ``$ref`` another by the same name
plus ``.json`` (e.g. ``{"$ref": "common/address.json"}``): refs resolve inside this folder only,
never over the network.

Patterns have JSON Schema's (ECMA-262) meaning, not Python's: ``$`` is the end of the text. Python's
``re`` lets ``^[0-9]{5}$`` match ``"12345\\n"`` (its ``$`` also matches before a final newline),
so :func:`validator` checks ``pattern`` with every unescaped ``$`` read as ``\\Z``: a value with
a trailing newline never passes a pattern that ends in ``$``, here or in any other validator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

_ROOT = resources.files(__name__)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One bad field: ``path`` is a JSON path such as ``$.address.postal_code``."""

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


def names() -> list[str]:
    """Every schema shipped, as the names :func:`load` takes."""
    found: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith(".json"):
                found.append(prefix + child.name[: -len(".json")])

    walk(_ROOT, "")
    return sorted(found)


@cache
def load(name: str) -> dict[str, Any]:
    text = _ROOT.joinpath(*f"{name}.json".split("/")).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _retrieve(uri: str) -> Resource[Any]:
    name = uri.removeprefix("urn:courier:").removesuffix(".json")
    if "/" in name and name.startswith(("http:", "https:")):
        raise LookupError(f"remote $ref refused: {uri}")
    # without its "$schema", a referenced schema is checked by the referring validator's class
    # (jsonschema would otherwise pick its own Draft 2020-12 class, with Python's pattern "$")
    contents = {k: v for k, v in load(name).items() if k != "$schema"}
    return Resource.from_contents(contents, default_specification=DRAFT202012)


@cache
def _registry() -> Registry[Any]:
    return Registry(retrieve=_retrieve)  # type: ignore[call-arg]


def python_pattern(pattern: str) -> str:
    """``pattern`` (JSON Schema, ECMA-262) for Python's ``re.search``: an unescaped ``$`` outside a
    character class becomes ``\\Z`` (the very end), which is what ``$`` means in JSON Schema."""
    out: list[str] = []
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            out.append("\\Z")
            continue
        out.append(char)
    return "".join(out)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(python_pattern(pattern))


def _pattern(
    validator: Any, pattern: str, instance: Any, _schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


# Draft 2020-12 with JSON Schema's own pattern semantics (see the module doc)
_Validator = validators.extend(Draft202012Validator, {"pattern": _pattern})


@cache
def validator(name: str) -> Draft202012Validator:
    schema = load(name)
    Draft202012Validator.check_schema(schema)
    base = dict(schema)
    base.setdefault("$id", f"urn:courier:{name}.json")
    made: Draft202012Validator = _Validator(
        base, registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    return made


def _message(err: Any) -> str:
    """What is wrong with the field, in words that never repeat the value sent: values are often
    personal data (a phone number, a name) and error messages end up in logs and screens."""
    rule, schema = err.validator, err.schema
    described = schema.get("description") if isinstance(schema, dict) else None
    if rule == "additionalProperties":
        extra = sorted(set(err.instance) - set(schema.get("properties", {})))
        return f"unknown field(s): {', '.join(extra)}"
    if rule == "required":
        return str(err.message).replace("is a required property", "is required")
    if rule == "type":
        kinds = err.validator_value
        kinds = " or ".join(kinds) if isinstance(kinds, list) else kinds
        return f"must be of type {kinds}"
    if rule in ("minLength", "maxLength"):
        bound = "at least" if rule == "minLength" else "at most"
        return f"must be {bound} {err.validator_value} characters"
    if rule in ("minItems", "maxItems"):
        bound = "at least" if rule == "minItems" else "at most"
        return f"must have {bound} {err.validator_value} items"
    if rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {
            "minimum": "at least",
            "maximum": "at most",
            "exclusiveMinimum": "more than",
            "exclusiveMaximum": "less than",
        }
        return f"must be {words[rule]} {err.validator_value}"
    if rule == "enum":
        return "must be one of: " + ", ".join(json.dumps(v) for v in err.validator_value)
    if rule == "const":
        return f"must be {json.dumps(err.validator_value)}"
    if rule in ("pattern", "format"):
        return str(described or f"does not match the expected {rule}")
    if isinstance(err.instance, str | int | float):
        return str(described or f"does not satisfy the {rule} rule")
    return str(err.message)


def check(name: str, instance: Any) -> list[FieldError]:
    """Every error in ``instance`` against schema ``name``, each with the path of the bad field."""
    errors = sorted(validator(name).iter_errors(instance), key=lambda e: list(e.absolute_path))
    out: list[FieldError] = []
    for err in errors:
        path = err.json_path
        if err.validator == "required":
            missing = str(err.message).split("'")[1] if "'" in str(err.message) else ""
            path = f"{path}.{missing}" if missing else path
        out.append(FieldError(path=path, message=_message(err)))
    return out
