"""Courier contracts: their terms, what contradicts them, and when two contracts collide.

A contract lets one courier carry passports for the offices it serves, to the regencies it
covers, from ``valid_from`` to ``valid_to`` (WIB days, both inclusive), on its terms: a service
level in working days and a tariff per kilogram for each zone, a declared-value cap, an
insurance cover and penalties per late and per lost shipment. Its status moves
draft → active ⇄ suspended → ended (a draft may also be dropped: ended); only a draft's terms
change. Pure: the use cases (courier/services/contracts.py) read and write the rows.

Refusals name the field (``FieldError`` paths of the terms' JSON form, as the API and the CLI's
file take them).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from schemas import FieldError

ALL = "*"  # a zone of every covered regency no other zone names


class ContractStatus(enum.StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    ENDED = "ended"


_S = ContractStatus
STATUS_MOVES: Mapping[ContractStatus, frozenset[ContractStatus]] = {
    _S.DRAFT: frozenset({_S.ACTIVE, _S.ENDED}),
    _S.ACTIVE: frozenset({_S.SUSPENDED, _S.ENDED}),
    _S.SUSPENDED: frozenset({_S.ACTIVE, _S.ENDED}),
    _S.ENDED: frozenset(),
}
# a contract that may book again: an overlap with one of these is refused
LIVE = frozenset({_S.ACTIVE, _S.SUSPENDED})


@dataclass(frozen=True)
class Zone:
    name: str
    regencies: frozenset[str] | None  # None: every covered regency no other zone names
    sla_days: int  # working days from pickup to delivery
    tariff_per_kg: int  # rupiah


@dataclass(frozen=True)
class Terms:
    number: str
    courier_code: str
    parties: tuple[str, ...]
    office_codes: frozenset[str]
    valid_from: date
    valid_to: date
    all_regencies: bool
    regency_codes: frozenset[str]  # empty when all_regencies
    zones: tuple[Zone, ...]
    declared_value_cap: int
    insurance_cover: int
    penalty_late: int
    penalty_lost: int

    def covers(self, regency: str) -> bool:
        return self.all_regencies or regency in self.regency_codes

    def zone_for(self, regency: str) -> Zone | None:
        """The zone whose terms apply to ``regency``: the one naming it, else the ``*`` zone;
        None when the contract does not cover it."""
        if not self.covers(regency):
            return None
        rest = None
        for zone in self.zones:
            if zone.regencies is None:
                rest = zone
            elif regency in zone.regencies:
                return zone
        return rest

    def valid_on(self, day: date) -> bool:
        return self.valid_from <= day <= self.valid_to


def in_force(status: str, terms: Terms, today: date) -> bool:
    """Active and ``today`` (a WIB day) within its period: the only contracts that may book."""
    return status == ContractStatus.ACTIVE.value and terms.valid_on(today)


def expected_cost(zone: Zone, weight_kg: Decimal) -> int:
    """Rupiah for one parcel: the zone's tariff per started kilogram, at least one (couriers
    charge by the kilogram, rounded up)."""
    return zone.tariff_per_kg * max(1, math.ceil(weight_kg))


def check_move(current: str, target: ContractStatus) -> str | None:
    """Why a status move is refused, or None when it is allowed."""
    try:
        now = ContractStatus(current)
    except ValueError:
        return f"unknown status {current}"
    if target not in STATUS_MOVES[now]:
        return f"a {now.value} contract cannot become {target.value}"
    return None


# --------------------------------------------------------------------------------------------
# Contradictory terms


def contradictions(
    terms: Terms,
    *,
    couriers: Iterable[str],
    is_regency: Callable[[str], bool],
) -> list[FieldError]:
    """Every term that contradicts another or names what does not exist."""
    errors: list[FieldError] = []
    if terms.courier_code not in set(couriers):
        errors.append(FieldError("$.courier", "unknown courier"))
    if terms.valid_to < terms.valid_from:
        errors.append(FieldError("$.valid_to", "must not be before valid_from"))
    if not terms.all_regencies:
        if not terms.regency_codes:
            errors.append(FieldError("$.regencies", 'must be "all" or name a regency'))
        errors += [
            FieldError("$.regencies", f"{code} is not a regency code")
            for code in sorted(terms.regency_codes)
            if not is_regency(code)
        ]
    errors += _zone_contradictions(terms, is_regency)
    if terms.insurance_cover > terms.declared_value_cap:
        errors.append(FieldError("$.insurance_cover", "must not exceed the declared_value_cap"))
    return errors


def _zone_contradictions(terms: Terms, is_regency: Callable[[str], bool]) -> list[FieldError]:
    """Each covered regency in exactly one zone (or the ``*`` zone), each zoned one covered."""
    if not terms.zones:
        return [FieldError("$.zones", "must name at least one zone")]
    errors: list[FieldError] = []
    seen: dict[str, str] = {}
    names: set[str] = set()
    rest = 0
    for i, zone in enumerate(terms.zones):
        path = f"$.zones[{i}]"
        if zone.name in names:
            errors.append(FieldError(f"{path}.name", "zone names must differ"))
        names.add(zone.name)
        if zone.regencies is None:
            rest += 1
            if rest > 1:
                errors.append(FieldError(f"{path}.regencies", 'only one zone may be "*"'))
            continue
        if not zone.regencies:
            errors.append(FieldError(f"{path}.regencies", 'must name a regency or be "*"'))
        for code in sorted(zone.regencies):
            if code in seen:
                why = f"{code} is also in zone {seen[code]}"
            elif not terms.covers(code):
                why = f"{code} is not among the covered regencies"
            elif not is_regency(code):
                why = f"{code} is not a regency code"
            else:
                why = ""
            seen.setdefault(code, zone.name)
            if why:
                errors.append(FieldError(f"{path}.regencies", why))
    if rest == 0:
        unzoned = ["*"] if terms.all_regencies else sorted(terms.regency_codes - set(seen))
        if unzoned:
            what = "every regency" if unzoned == ["*"] else ", ".join(unzoned[:5])
            errors.append(
                FieldError("$.zones", f'no zone gives the terms for {what}: add a "*" zone')
            )
    return errors


# --------------------------------------------------------------------------------------------
# Overlapping contracts


def _regencies_meet(a: Terms, b: Terms) -> set[str] | None:
    """The regencies both cover (None: both cover all); empty when they do not meet."""
    if a.all_regencies and b.all_regencies:
        return None
    if a.all_regencies:
        return set(b.regency_codes)
    if b.all_regencies:
        return set(a.regency_codes)
    return set(a.regency_codes & b.regency_codes)


def collision(terms: Terms, other: Terms) -> str | None:
    """Why two contracts of the same courier may not both be live, or None: they serve a same
    office over overlapping periods for a same regency (which terms would a shipment be
    under?)."""
    if terms.courier_code != other.courier_code or terms.number == other.number:
        return None
    offices = terms.office_codes & other.office_codes
    if not offices:
        return None
    if terms.valid_to < other.valid_from or other.valid_to < terms.valid_from:
        return None
    regencies = _regencies_meet(terms, other)
    if regencies is not None and not regencies:
        return None
    where = "every regency" if regencies is None else ", ".join(sorted(regencies)[:5])
    return (
        f"contract {other.number} of the same courier already serves "
        f"{', '.join(sorted(offices))} for {where} from {other.valid_from.isoformat()} "
        f"to {other.valid_to.isoformat()}"
    )


def collisions(terms: Terms, live: Sequence[Terms]) -> list[FieldError]:
    """One field error per live contract this one collides with (path ``$.valid_from``: the
    period is what a contract manager changes to settle it)."""
    found = (collision(terms, other) for other in live)
    return [FieldError("$.valid_from", why) for why in found if why is not None]


# --------------------------------------------------------------------------------------------
# The JSON form (API body, the CLI's file) and back


def _zone(data: Mapping[str, Any]) -> Zone:
    regencies = data["regencies"]
    return Zone(
        name=str(data["name"]),
        regencies=None if regencies == ALL else frozenset(str(c) for c in regencies),
        sla_days=int(data["sla_days"]),
        tariff_per_kg=int(data["tariff_per_kg"]),
    )


def terms_from_json(data: Mapping[str, Any]) -> Terms:
    """Terms from a body already checked against ``schemas/api/contract_terms.json``."""
    regencies = data["regencies"]
    return Terms(
        number=str(data["number"]),
        courier_code=str(data["courier"]),
        parties=tuple(str(p) for p in data["parties"]),
        office_codes=frozenset(str(o) for o in data["offices"]),
        valid_from=date.fromisoformat(str(data["valid_from"])),
        valid_to=date.fromisoformat(str(data["valid_to"])),
        all_regencies=regencies == "all",
        regency_codes=frozenset() if regencies == "all" else frozenset(map(str, regencies)),
        zones=tuple(_zone(z) for z in data["zones"]),
        declared_value_cap=int(data["declared_value_cap"]),
        insurance_cover=int(data.get("insurance_cover", 0)),
        penalty_late=int(data.get("penalty_late", 0)),
        penalty_lost=int(data.get("penalty_lost", 0)),
    )


def zones_json(zones: Sequence[Zone]) -> list[dict[str, Any]]:
    return [
        {
            "name": z.name,
            "regencies": ALL if z.regencies is None else sorted(z.regencies),
            "sla_days": z.sla_days,
            "tariff_per_kg": z.tariff_per_kg,
        }
        for z in zones
    ]


def zones_from_json(data: Sequence[Mapping[str, Any]]) -> tuple[Zone, ...]:
    return tuple(_zone(z) for z in data)
