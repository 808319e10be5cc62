"""Faults on demand, per endpoint: latency, 5xx, 429 with Retry-After, held answers (before or
after the request is processed), malformed bodies and expired tokens.

Faults run in *wall* time on purpose (latency, held responses): they exist to exercise the
client's real timeouts, which a simulated clock would not touch. Keep them to milliseconds.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

from aiohttp import web


@dataclass
class EndpointFaults:
    """Fault settings for one endpoint. Rates are probabilities per call, drawn in this order:
    expired_token, rate_limit, error, timeout, malformed (before processing), then
    timeout_processed, unknown_shape (after)."""

    latency_ms: tuple[int, int] = (0, 0)
    error_rate: float = 0.0  # 5xx
    rate_limit_rate: float = 0.0  # 429 with Retry-After
    retry_after: float = 1.0  # seconds, in the Retry-After header
    timeout_rate: float = 0.0  # hold the answer, then 504; the request is NOT processed
    timeout_processed_rate: float = 0.0  # process it, then hold the answer (a lost reply)
    timeout_seconds: float = 2.0  # wall seconds to hold: longer than the client waits
    malformed_rate: float = 0.0  # 200 with a body that is not the courier's JSON
    #: process it, then answer 200 with JSON in a shape no courier documents (an answer the
    #: client cannot understand while the order exists)
    unknown_shape_rate: float = 0.0
    expired_token_rate: float = 0.0  # Pos: 401 as if the Bearer token had expired

    @classmethod
    def from_mapping(
        cls, spec: Mapping[str, Any], base: EndpointFaults | None = None
    ) -> EndpointFaults:
        known = {f.name for f in fields(cls)}
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        values = {f.name: getattr(base or cls(), f.name) for f in fields(cls)}
        for key, value in spec.items():
            if key == "latency_ms":
                low, high = (
                    (int(value[0]), int(value[1]))
                    if isinstance(value, Sequence)
                    else (int(value), int(value))
                )
                if not 0 <= low <= high:
                    raise ValueError("latency_ms must be [min, max] with 0 <= min <= max")
                values[key] = (low, high)
            else:
                number = float(value)
                if key.endswith("_rate") and not 0.0 <= number <= 1.0:
                    raise ValueError(f"{key} must be between 0 and 1")
                if number < 0:
                    raise ValueError(f"{key} must not be negative")
                values[key] = number
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["latency_ms"] = list(self.latency_ms)
        return out


FAULT_KINDS = (
    "error",
    "rate_limit",
    "timeout",
    "timeout_processed",
    "malformed",
    "expired_token",
    "unknown_shape",
)
# Kinds that are decided before the request is processed; the others come after.
_PRE_KINDS = ("expired_token", "rate_limit", "error", "timeout", "malformed")
_POST_KINDS = ("timeout_processed", "unknown_shape")
#: what an ``unknown_shape`` fault answers: JSON, but neither courier's documented shape
UNKNOWN_SHAPE_BODY = {"result": "OK", "data": {"accepted": True, "ticket": "Q-7731"}}


@dataclass
class ForcedFault:
    endpoint: str  # an endpoint name, or "*" for any
    kind: str
    count: int = 1


class FaultTable:
    """Per-endpoint fault settings ("*" applies to every endpoint without its own entry) and a
    queue of forced faults ("the next N calls to create time out") so tests are exact.

    Spec (start options or ``POST /_sim/faults``)::

        {"seed": 7,
         "endpoints": {"*": {"latency_ms": [5, 20]}, "create": {"error_rate": 0.1}},
         "force": [{"endpoint": "create", "kind": "timeout", "count": 1}]}

    A body that is one forced fault (``{"endpoint": …, "kind": …, "count": …}``) is accepted too.
    """

    def __init__(self, spec: Mapping[str, Any] | None = None, *, seed: int | None = None) -> None:
        self.endpoints: dict[str, EndpointFaults] = {}
        self.forced: list[ForcedFault] = []
        self.rng = random.Random(seed)
        if spec:
            self.configure(spec)

    def configure(self, spec: Mapping[str, Any]) -> None:
        if "kind" in spec:
            self.force(str(spec.get("endpoint", "*")), str(spec["kind"]), int(spec.get("count", 1)))
            return
        unknown = set(spec) - {"seed", "endpoints", "force"}
        if unknown:
            raise ValueError(f"unknown fault key(s): {', '.join(sorted(unknown))}")
        if "seed" in spec:
            self.rng = random.Random(spec["seed"])
        for name, settings in dict(spec.get("endpoints") or {}).items():
            if not isinstance(settings, Mapping):
                raise ValueError(f"endpoints.{name} must be an object")
            self.set(str(name), **settings)
        forced = spec.get("force") or []
        for item in [forced] if isinstance(forced, Mapping) else forced:
            self.force(str(item.get("endpoint", "*")), str(item["kind"]), int(item.get("count", 1)))

    def set(self, endpoint: str, **settings: Any) -> EndpointFaults:
        """Merge ``settings`` into the endpoint's current ones."""
        merged = EndpointFaults.from_mapping(settings, self.endpoints.get(endpoint))
        self.endpoints[endpoint] = merged
        return merged

    def force(self, endpoint: str, kind: str, count: int = 1) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        self.forced.append(ForcedFault(endpoint, kind, count))

    def clear(self) -> None:
        self.endpoints.clear()
        self.forced.clear()

    def settings(self, endpoint: str) -> EndpointFaults:
        return self.endpoints.get(endpoint) or self.endpoints.get("*") or EndpointFaults()

    def _take_forced(self, endpoint: str, kinds: Sequence[str]) -> str | None:
        for item in self.forced:
            if item.endpoint in (endpoint, "*") and item.kind in kinds:
                item.count -= 1
                if item.count <= 0:
                    self.forced.remove(item)
                return item.kind
        return None

    def draw(self, endpoint: str, *, phase: str = "pre") -> str | None:
        """The fault kind for this call (or None). ``phase`` "pre": before processing; "post":
        after (only ``timeout_processed``). Forced faults come first, then the rates."""
        kinds = _PRE_KINDS if phase == "pre" else _POST_KINDS
        forced = self._take_forced(endpoint, kinds)
        if forced:
            return forced
        cfg = self.settings(endpoint)
        for kind in kinds:
            rate = float(getattr(cfg, f"{kind}_rate"))
            if rate > 0 and self.rng.random() < rate:
                return kind
        return None

    def latency(self, endpoint: str) -> float:
        low, high = self.settings(endpoint).latency_ms
        return 0.0 if high <= 0 else self.rng.uniform(low, high) / 1000.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoints": {name: cfg.as_dict() for name, cfg in self.endpoints.items()},
            "force": [dict(vars(item)) for item in self.forced],
        }


class Faulted(Protocol):
    """What applying faults needs of a simulator: its fault table and its shutdown signal."""

    faults: FaultTable
    closing: asyncio.Event
    calls: Counter[str]  # every request that reached an endpoint, by endpoint


MALFORMED_BODY = b'{"rs_tnt": {"r_tnt": [{"barcode": '  # cut short: not JSON at all


async def _hold(state: Faulted, seconds: float) -> None:
    """Wall-time wait that ends early when the app shuts down (so tests never linger)."""
    try:
        await asyncio.wait_for(state.closing.wait(), timeout=seconds)
    except TimeoutError:
        return


def fault_response(state: Faulted, endpoint: str, kind: str) -> web.Response:
    cfg = state.faults.settings(endpoint)
    if kind == "rate_limit":
        return web.json_response(
            {"message": "Too Many Requests"},
            status=429,
            headers={"Retry-After": f"{cfg.retry_after:g}"},
        )
    if kind == "error":
        return web.json_response({"message": "Internal Server Error"}, status=503)
    if kind == "malformed":
        return web.Response(body=MALFORMED_BODY, status=200, content_type="application/json")
    if kind == "expired_token":
        # WSO2 API Manager's shape for a token it no longer accepts (Pos gateway) [I]
        return web.json_response(
            {
                "fault": {
                    "code": 900901,
                    "message": "Invalid Credentials",
                    "description": "Access failure for API: invalid or expired token",
                }
            },
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="simulator", error="invalid_token"'},
        )
    return web.json_response({"message": "Gateway Timeout"}, status=504)


async def apply_faults(state: Faulted, endpoint: str) -> web.Response | None:
    """Latency (real wall time), then maybe a fault answer instead of processing the request.

    Returns the response to send (5xx, 429 + Retry-After, a malformed 200, a 401 expired token,
    or a 504 after holding past ``timeout_seconds``), or None: go on and process it.
    """
    delay = state.faults.latency(endpoint)
    if delay > 0:
        await asyncio.sleep(delay)
    kind = state.faults.draw(endpoint, phase="pre")
    if kind is None:
        return None
    if kind == "timeout":
        await _hold(state, state.faults.settings(endpoint).timeout_seconds)
    return fault_response(state, endpoint, kind)


async def run_with_faults(
    state: Faulted, endpoint: str, handler: Callable[[], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """:func:`apply_faults`, then the handler, then maybe hold its answer (``timeout_processed``:
    the order exists but the client never hears so; the case invariant 1 is about) or replace
    it with JSON of an unknown shape (``unknown_shape``). Every call is counted, faulted or not,
    so tests measure the courier calls a booking costs."""
    state.calls[endpoint] += 1
    early = await apply_faults(state, endpoint)
    if early is not None:
        return early
    response = await handler()
    late = state.faults.draw(endpoint, phase="post")
    if late == "timeout_processed":
        await _hold(state, state.faults.settings(endpoint).timeout_seconds)
    elif late == "unknown_shape":
        return web.json_response(UNKNOWN_SHAPE_BODY)
    return response
