"""Contract terms, collisions and routing as tables (pure: courier/domain/contracts.py and
courier/domain/routing.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from courier.domain import contracts as c
from courier.domain import routing
from courier.domain.contracts import ContractStatus, Terms, Zone

REST = Zone("Lainnya", None, 3, 12_000)
JATIM = Zone("Jawa Timur", frozenset({"35.73", "35.07"}), 2, 9_000)
BASE = Terms(
    number="JNT-2026",
    courier_code="jnt",
    parties=("Kantor Imigrasi Blitar", "PT Global Jet Express"),
    office_codes=frozenset({"BLT"}),
    valid_from=date(2026, 11, 1),
    valid_to=date(2027, 10, 31),
    all_regencies=True,
    regency_codes=frozenset(),
    zones=(JATIM, REST),
    declared_value_cap=1_000_000,
    insurance_cover=650_000,
    penalty_late=25_000,
    penalty_lost=1_000_000,
)
COURIERS = ("jnt", "posind")


def _known(code: str) -> bool:
    return code in {"35.73", "35.07", "35.72", "35.05"}


def _paths(terms: Terms) -> list[str]:
    return [e.path for e in c.contradictions(terms, couriers=COURIERS, is_regency=_known)]


def test_sound_terms_have_no_contradiction() -> None:
    assert _paths(BASE) == []


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"courier_code": "dhl"}, "$.courier"),
        ({"valid_to": date(2026, 10, 31)}, "$.valid_to"),
        ({"all_regencies": False, "regency_codes": frozenset()}, "$.regencies"),
        ({"all_regencies": False, "regency_codes": frozenset({"99.99"})}, "$.regencies"),
        ({"zones": ()}, "$.zones"),
        ({"zones": (JATIM,)}, "$.zones"),  # all regencies, no "*" zone: 35.72 has no terms
        ({"zones": (JATIM, REST, replace(REST, name="X"))}, "$.zones[2].regencies"),
        ({"zones": (JATIM, replace(JATIM, name="B"), REST)}, "$.zones[1].regencies"),
        ({"zones": (JATIM, replace(REST, name="Jawa Timur"))}, "$.zones[1].name"),
        ({"insurance_cover": 2_000_000}, "$.insurance_cover"),
        (
            {"all_regencies": False, "regency_codes": frozenset({"35.72"}), "zones": (JATIM,)},
            "$.zones[0].regencies",  # a zone names regencies the contract does not cover
        ),
    ],
)
def test_each_contradiction_names_its_field(change: dict[str, object], path: str) -> None:
    assert path in _paths(replace(BASE, **change))  # type: ignore[arg-type]


def test_zone_for_a_regency_is_its_own_zone_then_the_rest() -> None:
    assert BASE.zone_for("35.73") == JATIM
    assert BASE.zone_for("35.72") == REST
    listed = replace(BASE, all_regencies=False, regency_codes=frozenset({"35.73"}), zones=(JATIM,))
    assert listed.zone_for("35.72") is None


@pytest.mark.parametrize(
    ("change", "collides"),
    [
        ({}, True),
        ({"courier_code": "posind"}, False),
        ({"office_codes": frozenset({"KDR"})}, False),
        ({"valid_from": date(2027, 11, 1), "valid_to": date(2028, 10, 31)}, False),
        ({"valid_from": date(2027, 10, 31), "valid_to": date(2028, 10, 31)}, True),  # one day
        ({"all_regencies": False, "regency_codes": frozenset({"35.72"})}, True),
    ],
)
def test_collisions(change: dict[str, object], collides: bool) -> None:
    other = replace(BASE, number="JNT-2027", **change)  # type: ignore[arg-type]
    assert (c.collision(other, BASE) is not None) is collides
    disjoint_a = replace(BASE, all_regencies=False, regency_codes=frozenset({"35.73"}))
    disjoint_b = replace(other, all_regencies=False, regency_codes=frozenset({"35.72"}))
    assert c.collision(disjoint_a, disjoint_b) is None


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        ("draft", ContractStatus.ACTIVE, True),
        ("draft", ContractStatus.SUSPENDED, False),
        ("active", ContractStatus.SUSPENDED, True),
        ("suspended", ContractStatus.ACTIVE, True),
        ("active", ContractStatus.ENDED, True),
        ("ended", ContractStatus.ACTIVE, False),
    ],
)
def test_status_moves(current: str, target: ContractStatus, allowed: bool) -> None:
    assert (c.check_move(current, target) is None) is allowed


@pytest.mark.parametrize(
    ("weight", "cost"), [("0.2", 9_000), ("1", 9_000), ("1.01", 18_000), ("2.5", 27_000)]
)
def test_expected_cost_is_per_started_kilogram(weight: str, cost: int) -> None:
    assert c.expected_cost(JATIM, Decimal(weight)) == cost


PARCELS = {
    "jnt": routing.Parcel(Decimal("0.2"), 650_000),
    "posind": routing.Parcel(Decimal("0.2"), 650_000),
}
TODAY = date(2026, 11, 2)


def _choose(
    candidates: list[routing.Candidate],
    preference: tuple[str, ...] = (),
    on_time: dict[int, float] | None = None,
    today: date = TODAY,
    parcels: dict[str, routing.Parcel] = PARCELS,
) -> int | None:
    found = routing.choose(
        candidates,
        office_code="BLT",
        regency="35.73",
        today=today,
        preference=preference,
        parcels=parcels,
        on_time=on_time,
    )
    return found.contract_id if found else None


def _cand(cid: int, status: str = "active", **change: object) -> routing.Candidate:
    terms = replace(BASE, number=f"C{cid}", **change)  # type: ignore[arg-type]
    return routing.Candidate(cid, status, terms)


def test_only_contracts_in_force_that_serve_and_cover_are_candidates() -> None:
    assert _choose([_cand(1, valid_to=date(2026, 11, 1))]) is None  # expired yesterday
    assert _choose([_cand(1, valid_from=date(2026, 11, 3))]) is None  # starts tomorrow
    assert _choose([_cand(1, "suspended")]) is None
    assert _choose([_cand(1, "draft")]) is None
    assert _choose([_cand(1, "ended")]) is None
    assert _choose([_cand(1, office_codes=frozenset({"KDR"}))]) is None
    kab = frozenset({"35.07"})
    elsewhere = _cand(
        1, all_regencies=False, regency_codes=kab, zones=(replace(JATIM, regencies=kab),)
    )
    assert _choose([elsewhere]) is None
    assert _choose([_cand(1, declared_value_cap=500_000)]) is None
    assert _choose([_cand(1)], parcels={"posind": PARCELS["posind"]}) is None  # no adapter
    assert _choose([_cand(1, valid_to=TODAY)]) == 1  # the last day is inclusive


def test_preference_then_cost_then_on_time_then_number() -> None:
    cheap_pos = _cand(1, courier_code="posind", zones=(replace(JATIM, tariff_per_kg=8_000), REST))
    dear_jnt = _cand(2)
    assert _choose([cheap_pos, dear_jnt]) == 1  # no preference: cheaper
    assert _choose([cheap_pos, dear_jnt], preference=("jnt",)) == 2
    a, b = _cand(3), _cand(4)
    assert routing.tied_on_cost(
        [a, b], office_code="BLT", regency="35.73", today=TODAY, preference=(), parcels=PARCELS
    ) == [3, 4]
    assert _choose([a, b], on_time={3: 0.8, 4: 0.9}) == 4
    assert _choose([a, b], on_time={3: 0.5}) == 3  # a record beats none
    assert _choose([b, a]) == 3  # all equal: the number decides


def test_the_reason_is_bahasa_first() -> None:
    assert routing.no_route_reason("KOTA MALANG (35.73)") == (
        "Tidak ada kontrak kurir yang mencakup KOTA MALANG (35.73) hari ini / "
        "no courier contract covers KOTA MALANG (35.73) today"
    )
