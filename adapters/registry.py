"""Build a courier adapter from configuration: ``create("jnt", settings, clock=...)``.

Settings are checked against ``schemas/couriers/<code>/settings.json`` first; a bad one raises
ValueError listing every bad path (never the values: they hold keys and passwords). The optional
``transport`` block of the settings tunes :class:`~adapters.http.TransportPolicy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

import schemas
from adapters.base import CourierAdapter
from adapters.http import CallObserver, CourierTransport, TransportPolicy
from core.clock import Clock

CODES = ("jnt", "posind")


def validate(code: str, settings: Mapping[str, Any]) -> None:
    if code not in CODES:
        raise ValueError(f"unknown courier {code!r}; one of {', '.join(CODES)}")
    errors = schemas.check(f"couriers/{code}/settings", dict(settings))
    if errors:
        listed = "; ".join(f"{e.path}: {e.message}" for e in errors)
        raise ValueError(f"invalid {code} settings: {listed}")


def create(
    code: str,
    settings: Mapping[str, Any],
    *,
    clock: Clock,
    session: aiohttp.ClientSession | None = None,
    observer: CallObserver | None = None,
) -> CourierAdapter:
    validate(code, settings)
    policy = TransportPolicy.from_settings(settings.get("transport") or {})
    transport = CourierTransport(
        code, clock=clock, policy=policy, session=session, observer=observer
    )
    if code == "jnt":
        from adapters.jnt.adapter import JntAdapter

        return JntAdapter(settings, transport)
    # imported here so one courier's package never loads the other's
    from adapters.posind.adapter import PosIndonesiaAdapter

    return PosIndonesiaAdapter(settings, transport)
