"""A simulated parcel's whole life, planned once: the pure core both courier simulators share.

The plan is made by :func:`plan_lifecycle` when the order is created; a simulator then shows only
the steps whose time has come on its clock (:meth:`simulators.orders.SimOrder.visible_steps`). So
advancing a :class:`~core.clock.ManualClock` by two days makes two days of courier scans appear,
and the same seed always gives the same parcel history.

Each simulator renders the steps in its own courier's wire words (J&T ``history[]``, Pos
``r_tnt``); this module knows no wire format. Around it: :mod:`simulators.orders` (the order
book), :mod:`simulators.faults` (faults on demand), :mod:`simulators.variations` (the ways real
answers differ), :mod:`simulators.control` (the ``/_sim/`` API) and :mod:`simulators.artefacts`
(expiring proof-of-delivery links).
"""

from __future__ import annotations

import enum
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from core.clock import WIB


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
