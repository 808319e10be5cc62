"""The couriers this service speaks to: one descriptor per courier, and adapters built from them.

:data:`DESCRIPTORS` is the only list of couriers in the code: a new courier is its package
(exporting one :class:`~adapters.base.CourierDescriptor`) plus one line here. Booking, the
tracking page, ``courier simulate``, the demo and the configuration docs read it; the JSON
Schemas' courier enums are checked against it by ``tests/unit/adapters/test_registry.py``.

``create("jnt", settings, clock=...)`` checks the settings against the courier's schema first;
a bad one raises ValueError listing every bad path (never the values: they hold keys and
passwords). The optional ``transport`` block of the settings tunes
:class:`~adapters.http.TransportPolicy`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import aiohttp
from jsonschema import Draft202012Validator

import adapters.jnt
import adapters.posind
import schemas
from adapters.base import CourierAdapter, CourierDescriptor
from adapters.http import CallObserver, CourierTransport, RateGate, TransportPolicy
from core.clock import Clock

DESCRIPTORS: dict[str, CourierDescriptor] = {
    d.code: d
    for d in (
        adapters.jnt.DESCRIPTOR,
        adapters.posind.DESCRIPTOR,
    )
}


def codes() -> tuple[str, ...]:
    return tuple(DESCRIPTORS)


def default_code() -> str:
    """The courier of an office that names none: the first one registered above."""
    return next(iter(DESCRIPTORS))


def descriptor(code: str) -> CourierDescriptor:
    try:
        return DESCRIPTORS[code]
    except KeyError:
        raise ValueError(f"unknown courier {code!r}; one of {', '.join(DESCRIPTORS)}") from None


def name(code: str, language: str = "id") -> str:
    """The courier's name for people; an unknown code (a row from a courier since removed)
    is shown as stored."""
    found = DESCRIPTORS.get(code)
    return found.name(language) if found else code


@contextmanager
def registered(extra: CourierDescriptor) -> Iterator[CourierDescriptor]:
    """``extra`` listed for the duration (a courier package outside this tree, e.g. a test's)."""
    if extra.code in DESCRIPTORS:
        raise ValueError(f"courier {extra.code!r} is already registered")
    DESCRIPTORS[extra.code] = extra
    try:
        yield extra
    finally:
        del DESCRIPTORS[extra.code]


def _settings_errors(schema: str | Mapping[str, Any], settings: dict[str, Any]) -> list[str]:
    if isinstance(schema, str):
        return [f"{e.path}: {e.message}" for e in schemas.check(schema, settings)]
    validator = Draft202012Validator(dict(schema))
    return [
        f"$.{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in validator.iter_errors(settings)
    ]


def validate(code: str, settings: Mapping[str, Any]) -> None:
    errors = _settings_errors(descriptor(code).settings_schema, dict(settings))
    if errors:
        raise ValueError(f"invalid {code} settings: {'; '.join(errors)}")


def create(
    code: str,
    settings: Mapping[str, Any],
    *,
    clock: Clock,
    session: aiohttp.ClientSession | None = None,
    observer: CallObserver | None = None,
    gate: RateGate | None = None,
) -> CourierAdapter:
    """``gate``: where the account's rate and daily quota are kept (default: this process's
    memory; the service passes the database's, shared by all its processes)."""
    validate(code, settings)
    policy = TransportPolicy.from_settings(settings.get("transport") or {})
    transport = CourierTransport(
        code, clock=clock, policy=policy, session=session, observer=observer, gate=gate
    )
    return descriptor(code).adapter(settings, transport)
