"""The simulation core both courier simulators share (``adapters/jnt``, ``adapters/posind``).

A simulated parcel's whole life is *planned* once, when the order is created, by the pure function
:func:`plan_lifecycle`; a simulator then shows only the steps whose time has come on its clock
(:meth:`SimOrder.visible_steps`). So advancing a :class:`~core.clock.ManualClock` by two days
makes two days of courier scans appear, and the same seed always gives the same parcel history.

Each simulator renders the steps in its own courier's wire words (J&T ``history[]``, Pos
``r_tnt``); this module knows no wire format. It also holds what every simulator needs around
that: the order book with create counts per reference (invariant 1 is proved by counting),
fault injection per endpoint, the ``/_sim/`` control API, and expiring HMAC links for POD
artefacts with small deterministic PNG bodies.

Faults run in *wall* time on purpose (latency, held responses): they exist to exercise the
client's real timeouts, which a simulated clock would not touch. Keep them to milliseconds.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import json
import random
import secrets
import struct
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aiohttp import web

from core.clock import WIB, Clock

# --------------------------------------------------------------------------------------------
# Lifecycle plan


class StepKind(enum.StrEnum):
    BOOKED = "booked"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    ARRIVED_HUB = "arrived_hub"
    OUT_FOR_DELIVERY = "out_for_delivery"
    ATTEMPT_FAILED = "attempt_failed"
    DELIVERED = "delivered"
    RETURNING = "returning"
    RETURNED = "returned"
    LOST = "lost"


TERMINAL_KINDS = frozenset({StepKind.DELIVERED, StepKind.RETURNED, StepKind.LOST})


@dataclass(frozen=True)
class Step:
    """One scan in a parcel's life. ``at`` is aware UTC.

    On DELIVERED: ``relation`` is what the courier writes ("YBS" = the addressee in person,
    "ISTRI", "ORANG TUA", "Orang Serumah", "TETANGGA"…); ``receiver`` is the name of whoever
    signed, **empty when it is the addressee** (the simulator fills in the order's receiver name).
    On ATTEMPT_FAILED / RETURNING: ``reason``.
    """

    at: datetime
    kind: StepKind
    location: str
    receiver: str = ""
    relation: str = ""
    reason: str = ""


OUTCOMES: tuple[str, ...] = (
    "delivered_self",
    "delivered_family",
    "delivered_other",
    "fail_once_then_deliver",
    "returned",
    "lost",
)
# Weights for an unforced outcome: most passports reach the applicant first time (assumption [I]).
OUTCOME_WEIGHTS: tuple[float, ...] = (0.62, 0.16, 0.03, 0.13, 0.05, 0.01)

REASON_NOT_HOME = "Penerima tidak di tempat"
REASON_ADDRESS_UNCLEAR = "Alamat tidak jelas"
FAIL_REASONS = (REASON_NOT_HOME, REASON_ADDRESS_UNCLEAR)
RELATION_SELF = "YBS"  # "yang bersangkutan": the person named on the parcel
FAMILY_RELATIONS = ("ISTRI", "SUAMI", "ORANG TUA", "ANAK", "Orang Serumah")
OTHER_RELATIONS = ("TETANGGA", "SATPAM", "RT SETEMPAT")
MAX_ATTEMPTS = 3  # return to sender after this many failed attempts

_GIVEN = ("Siti", "Budi", "Agus", "Dewi", "Sri", "Eko", "Wahyu", "Rina", "Joko", "Lestari")
_FAMILY = ("Rahayu", "Santoso", "Wulandari", "Prasetyo", "Hidayat", "Susanti", "Purnomo")

# Kemendagri province prefixes (the two digits before the dot) of the island of Java; a
# parcel between two of these goes by road in about two days, anything else takes three.
_JAVA_PROVINCES = frozenset({"31", "32", "33", "34", "35", "36"})
_PROVINCE_NAMES = {
    "31": "DKI JAKARTA",
    "32": "JAWA BARAT",
    "33": "JAWA TENGAH",
    "34": "DI YOGYAKARTA",
    "35": "JAWA TIMUR",
    "36": "BANTEN",
    "51": "BALI",
}
DEFAULT_ORIGIN_REGENCY = "35.05"  # Kabupaten Blitar: the model office's home
# A few regencies by name so simulated scans read like real ones; others show their code.
_REGENCY_NAMES = {
    "35.04": "TULUNGAGUNG",
    "35.05": "BLITAR",
    "35.06": "KEDIRI",
    "35.07": "MALANG",
    "35.71": "KOTA KEDIRI",
    "35.72": "KOTA BLITAR",
    "35.73": "KOTA MALANG",
    "35.78": "SURABAYA",
    "31.71": "JAKARTA SELATAN",
    "33.74": "SEMARANG",
    "51.71": "DENPASAR",
}


def _province(regency_code: str) -> str:
    return regency_code.strip().split(".")[0][:2]


def transit_days(origin_regency_code: str, destination_regency_code: str) -> int:
    """1 day in the same regency, 1–2 in the same province (1 here), 2 across Java, 3 beyond.

    Derived from the code prefix only: the simulator has no map and needs none.
    """
    origin, dest = origin_regency_code.strip(), destination_regency_code.strip()
    if origin == dest or _province(origin) == _province(dest):
        return 1
    if _province(origin) in _JAVA_PROVINCES and _province(dest) in _JAVA_PROVINCES:
        return 2
    return 3


def _province_name(regency_code: str) -> str:
    return _PROVINCE_NAMES.get(_province(regency_code), f"PROVINSI {_province(regency_code)}")


def _office_name(regency_code: str) -> str:
    code = regency_code.strip()
    return f"KANTOR {_REGENCY_NAMES.get(code) or f'{code} {_province_name(code)}'}"


def _rng(seed: str) -> random.Random:
    # str seeds hash stably across runs only via an explicit digest (PYTHONHASHSEED aside)
    digest = hashlib.sha256(seed.encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _wib_at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=WIB).astimezone(UTC)


def next_pickup(booked_at: datetime, pickup_slots: Sequence[time]) -> datetime:
    """The first pickup slot (WIB wall time) strictly after ``booked_at``."""
    if not pickup_slots:
        raise ValueError("at least one pickup slot is needed")
    local = booked_at.astimezone(WIB)
    slots = sorted(pickup_slots)
    for offset in range(2):
        day = local.date() + timedelta(days=offset)
        for slot in slots:
            candidate = datetime.combine(day, slot.replace(tzinfo=None), tzinfo=WIB)
            if candidate > local:
                return candidate.astimezone(UTC)
    raise AssertionError("unreachable: a slot tomorrow is always later")  # pragma: no cover


class _Timeline:
    """Appends steps and keeps them strictly increasing in time (a scan never shares a minute)."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    def add(self, at: datetime, kind: StepKind, location: str, **extra: str) -> datetime:
        if self.steps and at <= self.steps[-1].at:
            at = self.steps[-1].at + timedelta(minutes=1)
        self.steps.append(Step(at=at, kind=kind, location=location, **extra))
        return at


def plan_lifecycle(
    *,
    booked_at: datetime,
    destination_regency_code: str,
    seed: str,
    outcome: str | None = None,
    pickup_slots: Sequence[time] = (time(10), time(15)),
    origin_regency_code: str = DEFAULT_ORIGIN_REGENCY,
) -> list[Step]:
    """A parcel's whole planned life, oldest first. Pure: same arguments → same steps.

    - BOOKED at ``booked_at``; PICKED_UP at the next pickup slot (WIB) plus 0–20 minutes;
    - IN_TRANSIT from the origin office that evening; one intermediate ARRIVED_HUB/IN_TRANSIT
      pair per extra transit day; ARRIVED_HUB at the destination office early on arrival day
      (1–3 days after pickup, :func:`transit_days`);
    - OUT_FOR_DELIVERY 07:30–09:30 WIB; then DELIVERED or ATTEMPT_FAILED late morning/afternoon;
      a failed attempt is retried the next morning; after :data:`MAX_ATTEMPTS` failures the
      parcel goes RETURNING and is RETURNED to the origin office after the same transit days;
    - LOST: the parcel goes silent after leaving the origin, declared lost a week later.

    ``outcome`` forces a script (one of :data:`OUTCOMES`); None draws one from the seed.
    """
    if booked_at.tzinfo is None:
        raise ValueError("booked_at must be timezone-aware")
    rng = _rng(seed)
    if outcome is None:
        outcome = rng.choices(OUTCOMES, weights=OUTCOME_WEIGHTS, k=1)[0]
    elif outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; one of {', '.join(OUTCOMES)}")

    origin_office = _office_name(origin_regency_code)
    dest_office = _office_name(destination_regency_code)
    hub = f"HUB {_province_name(origin_regency_code)}"
    days = transit_days(origin_regency_code, destination_regency_code)

    line = _Timeline()
    line.add(booked_at.astimezone(UTC), StepKind.BOOKED, origin_office)
    pickup = next_pickup(booked_at, pickup_slots) + timedelta(minutes=rng.randint(0, 20))
    line.add(pickup, StepKind.PICKED_UP, origin_office)
    pickup_day = pickup.astimezone(WIB).date()
    line.add(
        max(pickup + timedelta(hours=2), _wib_at(pickup_day, 18, rng.randint(0, 59))),
        StepKind.IN_TRANSIT,
        origin_office,
    )
    for extra in range(1, days):
        day = pickup_day + timedelta(days=extra)
        line.add(_wib_at(day, 3, rng.randint(0, 59)), StepKind.ARRIVED_HUB, hub)
        line.add(_wib_at(day, 19, rng.randint(0, 59)), StepKind.IN_TRANSIT, hub)

    if outcome == "lost":
        silent_since = line.steps[-1].at
        line.add(silent_since + timedelta(days=7), StepKind.LOST, line.steps[-1].location)
        return line.steps

    arrival_day = pickup_day + timedelta(days=days)
    line.add(_wib_at(arrival_day, 5, rng.randint(0, 59)), StepKind.ARRIVED_HUB, dest_office)

    failures = {"fail_once_then_deliver": 1, "returned": MAX_ATTEMPTS}.get(outcome, 0)
    day = arrival_day
    for _ in range(failures):
        out = line.add(
            _wib_at(day, 7, 30 + rng.randint(0, 29)), StepKind.OUT_FOR_DELIVERY, dest_office
        )
        line.add(
            out + timedelta(minutes=rng.randint(90, 360)),
            StepKind.ATTEMPT_FAILED,
            dest_office,
            reason=rng.choice(FAIL_REASONS),
        )
        day += timedelta(days=1)

    if outcome == "returned":
        line.add(
            _wib_at(day, 7, rng.randint(0, 59)),
            StepKind.RETURNING,
            dest_office,
            reason="Retur: gagal antar 3 kali",
        )
        back = day + timedelta(days=days)
        line.add(_wib_at(back, 10, rng.randint(0, 59)), StepKind.RETURNED, origin_office)
        return line.steps

    out = line.add(_wib_at(day, 7, 30 + rng.randint(0, 29)), StepKind.OUT_FOR_DELIVERY, dest_office)
    receiver, relation = "", RELATION_SELF
    if outcome == "delivered_family":
        relation = rng.choice(FAMILY_RELATIONS)
        receiver = f"{rng.choice(_GIVEN)} {rng.choice(_FAMILY)}"
    elif outcome == "delivered_other":
        relation = rng.choice(OTHER_RELATIONS)
        receiver = f"{rng.choice(_GIVEN)} {rng.choice(_FAMILY)}"
    line.add(
        out + timedelta(minutes=rng.randint(60, 300)),
        StepKind.DELIVERED,
        dest_office,
        receiver=receiver,
        relation=relation,
    )
    return line.steps


# --------------------------------------------------------------------------------------------
# Orders and state


@dataclass
class SimOrder:
    reference: str
    waybill: str
    created_at: datetime
    destination_regency_code: str
    steps: list[Step]
    cancelled_at: datetime | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    def visible_steps(self, now: datetime) -> list[Step]:
        """Steps that have happened by ``now``; nothing after a cancel."""
        cutoff = now if self.cancelled_at is None else min(now, self.cancelled_at)
        return [s for s in self.steps if s.at <= cutoff]

    def current(self, now: datetime) -> Step | None:
        seen = self.visible_steps(now)
        return seen[-1] if seen else None

    def picked_up(self, now: datetime) -> bool:
        return any(s.kind is not StepKind.BOOKED for s in self.visible_steps(now))


@dataclass
class EndpointFaults:
    """Fault settings for one endpoint. Rates are probabilities per call, drawn in this order:
    expired_token, rate_limit, error, timeout, timeout_processed, malformed."""

    latency_ms: tuple[int, int] = (0, 0)
    error_rate: float = 0.0  # 5xx
    rate_limit_rate: float = 0.0  # 429 with Retry-After
    retry_after: float = 1.0  # seconds, in the Retry-After header
    timeout_rate: float = 0.0  # hold the answer, then 504; the request is NOT processed
    timeout_processed_rate: float = 0.0  # process it, then hold the answer (a lost reply)
    timeout_seconds: float = 2.0  # wall seconds to hold: longer than the client waits
    malformed_rate: float = 0.0  # 200 with a body that is not the courier's JSON
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


FAULT_KINDS = ("error", "rate_limit", "timeout", "timeout_processed", "malformed", "expired_token")
# Kinds that are decided before the request is processed; timeout_processed comes after.
_PRE_KINDS = ("expired_token", "rate_limit", "error", "timeout", "malformed")


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
        kinds = _PRE_KINDS if phase == "pre" else ("timeout_processed",)
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


@dataclass
class SimState:
    clock: Clock
    orders: dict[str, SimOrder] = field(default_factory=dict)  # by our reference
    create_counts: Counter[str] = field(default_factory=Counter)  # every create attempt
    faults: FaultTable = field(default_factory=FaultTable)
    forced_outcomes: dict[str, str] = field(default_factory=dict)  # reference -> outcome
    link_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    seed: str = "sim"  # lifecycle seed prefix: plan seed = f"{seed}:{reference}"
    pickup_slots: tuple[time, ...] = (time(10), time(15))
    origin_regency_code: str = DEFAULT_ORIGIN_REGENCY
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # set: stop holding replies

    def by_waybill(self, waybill: str) -> SimOrder | None:
        for order in self.orders.values():
            if order.waybill == waybill:
                return order
        return None

    def plan(
        self, reference: str, booked_at: datetime, destination_regency_code: str
    ) -> list[Step]:
        return plan_lifecycle(
            booked_at=booked_at,
            destination_regency_code=destination_regency_code,
            seed=f"{self.seed}:{reference}",
            outcome=self.forced_outcomes.get(reference),
            pickup_slots=self.pickup_slots,
            origin_regency_code=self.origin_regency_code,
        )

    def add_order(
        self,
        reference: str,
        waybill: str,
        destination_regency_code: str,
        payload: Mapping[str, Any] | None = None,
    ) -> SimOrder:
        """Record an accepted create (the caller has counted it and checked for duplicates)."""
        now = self.clock.now()
        order = SimOrder(
            reference=reference,
            waybill=waybill,
            created_at=now,
            destination_regency_code=destination_regency_code,
            steps=self.plan(reference, now, destination_regency_code),
            payload=dict(payload or {}),
        )
        self.orders[reference] = order
        return order


# --------------------------------------------------------------------------------------------
# Faults applied to a request


MALFORMED_BODY = b'{"rs_tnt": {"r_tnt": [{"barcode": '  # cut short: not JSON at all


async def _hold(state: SimState, seconds: float) -> None:
    """Wall-time wait that ends early when the app shuts down (so tests never linger)."""
    try:
        await asyncio.wait_for(state.closing.wait(), timeout=seconds)
    except TimeoutError:
        return


def fault_response(state: SimState, endpoint: str, kind: str) -> web.Response:
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


async def apply_faults(state: SimState, endpoint: str) -> web.Response | None:
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
    state: SimState, endpoint: str, handler: Callable[[], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """:func:`apply_faults`, then the handler, then maybe hold its answer (``timeout_processed``:
    the order exists but the client never hears so; the case invariant 1 is about)."""
    early = await apply_faults(state, endpoint)
    if early is not None:
        return early
    response = await handler()
    if state.faults.draw(endpoint, phase="post") == "timeout_processed":
        await _hold(state, state.faults.settings(endpoint).timeout_seconds)
    return response


# --------------------------------------------------------------------------------------------
# Expiring links and artefacts


def _link_mac(secret: bytes, path: str, expires: int) -> str:
    return hmac.new(secret, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


def sign_link(secret: bytes, path: str, expires_at: datetime) -> str:
    """``path?expires=<epoch>&signature=<hmac>``: a link that stops working at ``expires_at``."""
    expires = int(expires_at.timestamp())
    return f"{path}?expires={expires}&signature={_link_mac(secret, path, expires)}"


def verify_link(secret: bytes, path: str, query: Mapping[str, str], now: datetime) -> bool:
    try:
        expires = int(query.get("expires", ""))
    except ValueError:
        return False
    signature = query.get("signature", "")
    if not hmac.compare_digest(signature, _link_mac(secret, path, expires)):
        return False
    return now.timestamp() < expires


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def artefact_bytes(kind: str, waybill: str, size: int = 8) -> bytes:
    """A tiny valid PNG whose pixels derive from (kind, waybill): same input, same sha256."""
    digest = hashlib.sha256(f"{kind}:{waybill}".encode()).digest()
    rows = b"".join(
        b"\x00" + bytes(digest[(x + y) % len(digest)] for x in range(size * 3)) for y in range(size)
    )
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows, 9))
        + _png_chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------------------------
# The /_sim/ control API


def _step_json(step: Step) -> dict[str, Any]:
    return {
        "at": step.at.isoformat(),
        "kind": str(step.kind),
        "location": step.location,
        "receiver": step.receiver,
        "relation": step.relation,
        "reason": step.reason,
    }


def order_json(order: SimOrder, now: datetime) -> dict[str, Any]:
    current = order.current(now)
    return {
        "reference": order.reference,
        "waybill": order.waybill,
        "created_at": order.created_at.isoformat(),
        "cancelled_at": order.cancelled_at.isoformat() if order.cancelled_at else None,
        "destination_regency_code": order.destination_regency_code,
        "current": str(current.kind) if current else None,
        "visible": len(order.visible_steps(now)),
        "steps": [_step_json(s) for s in order.steps],
    }


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise web.HTTPBadRequest(text=f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


def control_routes(state: SimState) -> list[web.RouteDef]:
    """Test/demo controls. Not part of any courier's API; never exposed by the real couriers."""

    async def orders(request: web.Request) -> web.Response:
        now = state.clock.now()
        return web.json_response(
            {
                "now": now.isoformat(),
                "orders": [order_json(o, now) for o in state.orders.values()],
                "create_counts": dict(state.create_counts),
            }
        )

    async def clock_get(request: web.Request) -> web.Response:
        return web.json_response({"now": state.clock.now().isoformat()})

    async def clock_advance(request: web.Request) -> web.Response:
        body = await _json_body(request)
        advance = getattr(state.clock, "advance", None)
        if advance is None:
            raise web.HTTPConflict(text="this simulator runs on a clock that cannot be advanced")
        try:
            seconds = float(body["seconds"])
        except (KeyError, TypeError, ValueError):
            raise web.HTTPBadRequest(text='expected {"seconds": <number>}') from None
        if seconds < 0:
            raise web.HTTPBadRequest(text="a clock never goes backwards")
        advance(timedelta(seconds=seconds))
        return web.json_response({"now": state.clock.now().isoformat()})

    async def faults_get(request: web.Request) -> web.Response:
        return web.json_response(state.faults.as_dict())

    async def faults_set(request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            state.faults.configure(body)
        except (ValueError, TypeError, KeyError) as exc:
            raise web.HTTPBadRequest(text=f"bad fault spec: {exc}") from None
        return web.json_response(state.faults.as_dict())

    async def faults_clear(request: web.Request) -> web.Response:
        state.faults.clear()
        return web.json_response(state.faults.as_dict())

    async def outcome_set(request: web.Request) -> web.Response:
        body = await _json_body(request)
        reference, outcome = body.get("reference"), body.get("outcome")
        if not isinstance(reference, str) or outcome not in OUTCOMES:
            raise web.HTTPBadRequest(
                text=f'expected {{"reference": str, "outcome": one of {", ".join(OUTCOMES)}}}'
            )
        state.forced_outcomes[reference] = str(outcome)
        existing = state.orders.get(reference)
        if existing is not None:  # re-plan from its booking time; meant for tests
            existing.steps = state.plan(
                reference, existing.created_at, existing.destination_regency_code
            )
        return web.json_response({"reference": reference, "outcome": outcome})

    return [
        web.get("/_sim/orders", orders),
        web.get("/_sim/clock", clock_get),
        web.post("/_sim/clock/advance", clock_advance),
        web.get("/_sim/faults", faults_get),
        web.post("/_sim/faults", faults_set),
        web.delete("/_sim/faults", faults_clear),
        web.post("/_sim/outcomes", outcome_set),
    ]


def install(app: web.Application, state: SimState) -> None:
    """Add the control routes and release held replies on shutdown."""

    async def release(_: web.Application) -> None:
        state.closing.set()

    app.add_routes(control_routes(state))
    app.on_shutdown.append(release)
