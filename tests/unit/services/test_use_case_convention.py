"""The convention between the HTTP handlers and the use cases, checked on every call a handler
makes: the use case lives in ``courier.services``, takes the AppContext first, and answers with
frozen views, never an ORM row (the import-linter contract keeps ``courier.db`` and sqlalchemy
out of ``courier.web`` itself; this keeps them out of what the handlers are given)."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import courier.web
from courier.context import AppContext
from courier.db.models import Base

WEB = Path(courier.web.__file__).parent


def _awaited_service_calls() -> Iterator[tuple[str, str, str]]:
    """(web module, service module, function) of every ``await service.function(...)``."""
    for path in sorted(WEB.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        services: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "courier.services":
                services |= {a.asname or a.name: f"courier.services.{a.name}" for a in node.names}
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Await)
                and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Attribute)
                and isinstance(node.value.func.value, ast.Name)
                and node.value.func.value.id in services
            ):
                yield path.stem, services[node.value.func.value.id], node.value.func.attr


def _types_in(hint: Any) -> Iterator[Any]:
    yield hint
    for arg in typing.get_args(hint):
        yield from _types_in(arg)


def _problems(hint: Any, seen: set[Any]) -> Iterator[str]:
    """What in a return type is not a plain frozen view."""
    for kind in _types_in(hint):
        if kind in seen or not isinstance(kind, type) or isinstance(kind, types.GenericAlias):
            continue
        seen.add(kind)
        if issubclass(kind, Base):
            yield f"ORM model {kind.__name__}"
        elif dataclasses.is_dataclass(kind):
            if not kind.__dataclass_params__.frozen:  # type: ignore[attr-defined]
                yield f"{kind.__name__} is not frozen"
            module = importlib.import_module(kind.__module__)
            hints = typing.get_type_hints(kind, vars(module))
            for name in (f.name for f in dataclasses.fields(kind)):
                yield from _problems(hints[name], seen)


def test_handlers_call_use_cases_that_take_the_context_and_return_frozen_views() -> None:
    calls = sorted(set(_awaited_service_calls()))
    assert len(calls) >= 15, calls  # the parser found the handlers' calls
    wrong: list[str] = []
    for web_module, service_module, name in calls:
        function = getattr(importlib.import_module(service_module), name)
        where = f"courier.web.{web_module} → {service_module}.{name}"
        hints = typing.get_type_hints(function)
        first = next(iter(inspect.signature(function).parameters))
        if hints.get(first) is not AppContext:
            wrong.append(f"{where}: first parameter {first!r} is not the AppContext")
        wrong += [f"{where}: {p}" for p in _problems(hints["return"], set())]
    assert not wrong, "\n".join(wrong)
