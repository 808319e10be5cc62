"""Routing: which contract a passport goes under (docs/decisions.md §28).

Candidates are the contracts in force today (active, today's WIB day within their period) that
serve the office, cover the destination regency, accept the passport's declared value and whose
courier this deployment can call. Among them the office's policy chooses:

1. the office's preferred courier order (``offices.courier_preference``; couriers it does not
   name come after those it does, as equals);
2. the lowest expected cost by the contract's tariff for the destination's zone;
3. the best recent on-time rate (a contract with no record yet ranks below one with any);
4. the contract number, so that the same facts always give the same answer.

None of them: nothing is booked; the caller says why with :func:`no_route_reason`.
Pure: the use case (courier/services/routing.py) loads the rows and the on-time rates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from courier.domain.contracts import Terms, Zone, expected_cost, in_force


@dataclass(frozen=True)
class Candidate:
    contract_id: int
    status: str
    terms: Terms


@dataclass(frozen=True)
class Parcel:
    """What one courier would be sent: its weight and declared value (the courier's settings)."""

    weight_kg: Decimal
    declared_value: int  # rupiah


@dataclass(frozen=True)
class Route:
    contract_id: int
    number: str
    courier_code: str
    zone: Zone
    expected_cost: int  # rupiah


@dataclass(frozen=True)
class NoRoute:
    regency_code: str
    reason: str  # Bahasa Indonesia first, English second (:func:`no_route_reason`)


def eligible(
    candidate: Candidate,
    *,
    office_code: str,
    regency: str,
    today: date,
    parcels: Mapping[str, Parcel],
) -> Zone | None:
    """The zone whose terms apply when ``candidate`` may carry this passport today, else None.
    ``parcels``: by courier code, the couriers this deployment can call."""
    terms = candidate.terms
    if not in_force(candidate.status, terms, today):
        return None
    parcel = parcels.get(terms.courier_code)
    if office_code not in terms.office_codes or parcel is None:
        return None
    if parcel.declared_value > terms.declared_value_cap:
        return None
    return terms.zone_for(regency)


def choose(
    candidates: Sequence[Candidate],
    *,
    office_code: str,
    regency: str,
    today: date,
    preference: Sequence[str],
    parcels: Mapping[str, Parcel],
    on_time: Mapping[int, float] | None = None,
) -> Route | None:
    """The contract to book under, by the office's policy; None when no contract may carry it.
    ``on_time``: recent on-time rates (0-1) by contract id, where known."""
    rates = on_time or {}
    ranked: list[tuple[tuple[int, int, float, str], Route]] = []
    for candidate in candidates:
        zone = eligible(
            candidate,
            office_code=office_code,
            regency=regency,
            today=today,
            parcels=parcels,
        )
        if zone is None:
            continue
        terms = candidate.terms
        cost = expected_cost(zone, parcels[terms.courier_code].weight_kg)
        order = (
            preference.index(terms.courier_code)
            if terms.courier_code in preference
            else len(preference)
        )
        rate = rates.get(candidate.contract_id, -1.0)
        key = (order, cost, -rate, terms.number)
        route = Route(candidate.contract_id, terms.number, terms.courier_code, zone, cost)
        ranked.append((key, route))
    if not ranked:
        return None
    return min(ranked, key=lambda pair: pair[0])[1]


def tied_on_cost(
    candidates: Sequence[Candidate],
    *,
    office_code: str,
    regency: str,
    today: date,
    preference: Sequence[str],
    parcels: Mapping[str, Parcel],
) -> list[int]:
    """The contracts still tied after preference and cost: only their on-time rates can decide,
    so only they need the database's look at recent shipments."""
    keyed: list[tuple[tuple[int, int], int]] = []
    for candidate in candidates:
        zone = eligible(
            candidate,
            office_code=office_code,
            regency=regency,
            today=today,
            parcels=parcels,
        )
        if zone is None:
            continue
        courier = candidate.terms.courier_code
        order = preference.index(courier) if courier in preference else len(preference)
        cost = expected_cost(zone, parcels[courier].weight_kg)
        keyed.append(((order, cost), candidate.contract_id))
    if len(keyed) < 2:
        return []
    best = min(key for key, _ in keyed)
    tied = [contract_id for key, contract_id in keyed if key == best]
    return tied if len(tied) > 1 else []


def no_route_reason(regency_label: str) -> str:
    """What staff read on the delivery and its item: Bahasa Indonesia first, English second."""
    return (
        f"Tidak ada kontrak kurir yang mencakup {regency_label} hari ini / "
        f"no courier contract covers {regency_label} today"
    )
