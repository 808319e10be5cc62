"""Scorecards on a constructed December 2026 (Christmas: cuti bersama on Thursday 24, Natal on
Friday 25, then a weekend; New Year's Day on Friday 1 January), every figure computed by hand
(docs/decisions.md §29), on SQLite and PostgreSQL.

J&T, contract JNT-2026 (SLA 2 working days from pickup, Rp9,000 per shipment, Rp25,000 per late
shipment, Rp1,000,000 per lost one), all times UTC (WIB is +7):

    A  booked 22 Dec 01:00, picked 03:00, delivered Mon 28 Dec 05:00  2 working days: on time
    B  booked 22 Dec 01:00, picked 05:00, failed 23 Dec, delivered Tue 29 Dec 04:00  3: late;
       no proof of delivery
    C  booked 21 Dec 01:00, picked 03:00, lost
    D  booked 21 Dec 02:00, picked 06:00, failed 22 and 23 Dec, returned (rated 1: not counted)
    E  booked 30 Dec 01:00, picked 03:00, in transit on Wed 6 Jan: 3 working days (31 Dec, 4 and
       6 Jan; New Year on 1 Jan and Isra Mikraj on 5 Jan are holidays): late; one unmapped code
    F  booked 20 Nov (outside December, inside 2026Q4), delivered on time

Pos Indonesia, no contract (an office routed by its configured courier): H delivered in a day.
Another office's December shipment is never counted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import contract_seed
import pytest
import worker_seed as seed
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import ManualClock
from courier.config import Settings
from courier.context import AppContext
from courier.db.engine import SessionFactory, transaction
from courier.db.models import Proof, Rating, Shipment, TrackingEventRow
from courier.services import contracts, scorecards

NOW = datetime(2027, 1, 6, 3, 0, tzinfo=UTC)  # Wednesday 10:00 WIB


def _t(month: int, day: int, hour: int) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


async def _shipment(
    sessions: SessionFactory,
    delivery_id: int,
    *,
    courier: str,
    contract_id: int | None,
    status: str,
    booked: datetime,
    events: list[tuple[str | None, datetime]],
    proof: bool = False,
    rating: int | None = None,
) -> None:
    async with transaction(sessions) as session:
        row = Shipment(
            delivery_id=delivery_id,
            attempt_no=1,
            courier_code=courier,
            contract_id=contract_id,
            sla_days=2 if contract_id else None,
            cost=9_000 if contract_id else None,
            client_reference=f"REF{delivery_id:06d}",
            waybill=f"WB{delivery_id:06d}",
            status=status,
            booked_at=booked,
            created_at=booked,
            updated_at=booked,
        )
        session.add(row)
        await session.flush()
        for i, (status_, at) in enumerate(events):
            session.add(
                TrackingEventRow(
                    shipment_id=row.id,
                    source="poll",
                    raw_code=status_ or "X99",
                    raw_text=status_ or "kode tak dikenal",
                    status=status_,
                    occurred_at=at,
                    received_at=at,
                    location="",
                    applied=status_ is not None,
                    raw={},
                    dedupe_key=f"{row.id}:{i}",
                )
            )
        if proof:
            session.add(
                Proof(
                    shipment_id=row.id,
                    receiver_name="Pemohon",
                    relation="self",
                    relation_kind="self",
                    occurred_at=events[-1][1],
                    artefacts=[],
                    created_at=events[-1][1],
                )
            )
        if rating is not None:
            session.add(Rating(delivery_id=delivery_id, score=rating, created_at=NOW))


@pytest.fixture
async def card_ctx(db_url: str, engine: AsyncEngine, sessions: SessionFactory) -> AppContext:
    return AppContext(
        settings=Settings(raw={}, database_url=db_url),
        engine=engine,
        sessions=sessions,
        clock=ManualClock(NOW),
    )


async def _seed(ctx: AppContext, sessions: SessionFactory) -> None:
    office = await seed.office(sessions)
    other = await seed.office(sessions, code="MLG")
    jnt = await contract_seed.contract(ctx, contract_seed.terms("JNT-2026"))
    a, b, c, d, e, f, h = await seed.deliveries(sessions, office, 7)
    [elsewhere] = await seed.deliveries(sessions, other, 1, start=100)
    jnt_ = {"courier": "jnt", "contract_id": jnt}
    await _shipment(
        sessions, a, **jnt_, status="delivered", booked=_t(12, 22, 1),
        events=[("picked_up", _t(12, 22, 3)), ("in_transit", _t(12, 23, 1)),
                ("delivered", _t(12, 28, 5))],
        proof=True, rating=4,
    )  # fmt: skip
    await _shipment(
        sessions, b, **jnt_, status="delivered", booked=_t(12, 22, 1),
        events=[("picked_up", _t(12, 22, 5)), ("delivery_failed", _t(12, 23, 6)),
                ("delivered", _t(12, 29, 4))],
        rating=2,
    )  # fmt: skip
    await _shipment(
        sessions, c, **jnt_, status="lost", booked=_t(12, 21, 1),
        events=[("picked_up", _t(12, 21, 3)), ("lost", _t(12, 27, 3))],
    )  # fmt: skip
    await _shipment(
        sessions, d, **jnt_, status="returned", booked=_t(12, 21, 2),
        events=[("picked_up", _t(12, 21, 6)), ("delivery_failed", _t(12, 22, 5)),
                ("delivery_failed", _t(12, 23, 5)), ("returned", _t(12, 29, 5))],
        rating=1,
    )  # fmt: skip
    await _shipment(
        sessions, e, **jnt_, status="in_transit", booked=_t(12, 30, 1),
        events=[("picked_up", _t(12, 30, 3)), (None, _t(12, 31, 3))],
    )  # fmt: skip
    await _shipment(
        sessions, f, **jnt_, status="delivered", booked=_t(11, 20, 1),
        events=[("picked_up", _t(11, 20, 3)), ("delivered", _t(11, 23, 3))], proof=True,
    )  # fmt: skip
    await _shipment(
        sessions, h, courier="posind", contract_id=None, status="delivered",
        booked=_t(12, 22, 1),
        events=[("picked_up", _t(12, 22, 3)), ("delivered", _t(12, 23, 3))], proof=True,
    )  # fmt: skip
    await _shipment(
        sessions, elsewhere, **jnt_, status="lost", booked=_t(12, 22, 1),
        events=[("picked_up", _t(12, 22, 3))],
    )  # fmt: skip


JNT_DECEMBER: dict[str, Any] = {
    "shipments": 5,
    "delivered": 2,
    "on_time": 1,
    "decided": 4,  # A, B delivered; C lost; E open past its SLA
    "on_time_rate": 0.25,
    "late": 2,  # B, E
    "pickup_latency_median_hours": 2.0,  # 2, 2, 2, 4, 4
    "transit_median_hours": 156.5,  # A 146 h, B 167 h
    "transit_p90_hours": 164.9,  # 146 + 0.9 × 21
    "attempted": 3,  # A, B delivered; D failed twice
    "first_attempt_success": 1,
    "first_attempt_success_rate": 0.3333,
    "failed_attempts": 3,
    "failed_attempts_per_delivery": 1.0,
    "returns": 1,
    "losses": 1,
    "unmapped_codes": 1,
    "missing_pod": 1,
    "cost_total": 45_000,
    "cost_per_delivered": 22_500.0,
    "penalty_exposure": 2 * 25_000 + 1_000_000,
    "satisfaction_mean": 3.0,  # A 4, B 2; D's 1 is not a delivered shipment's
    "satisfaction_count": 2,
}


def _figures(found: scorecards.Figures) -> dict[str, Any]:
    return {k: getattr(found, k) for k in JNT_DECEMBER}


async def test_a_month_matches_the_hand_computed_figures(
    card_ctx: AppContext, sessions: SessionFactory
) -> None:
    await _seed(card_ctx, sessions)
    caller = await contracts.local_caller(card_ctx, "BLT")
    card = await scorecards.scorecard(card_ctx, caller, period="2026-12", office_code="BLT")
    assert (card.first.isoformat(), card.last.isoformat()) == ("2026-12-01", "2026-12-31")
    jnt, pos = card.couriers
    assert jnt.courier_code == "jnt"
    assert _figures(jnt) == pytest.approx(JNT_DECEMBER)
    [per_contract] = card.contracts
    assert per_contract.contract_number == "JNT-2026"
    assert _figures(per_contract) == pytest.approx(JNT_DECEMBER)
    # no contract, no SLA: delivered, but no on-time figure and nothing to pay in penalties
    assert (pos.courier_code, pos.shipments, pos.delivered, pos.decided) == ("posind", 1, 1, 0)
    assert pos.on_time_rate is None and pos.penalty_exposure == 0
    assert pos.transit_median_hours == pytest.approx(24.0)
    assert [(m.courier_code, m.month, m.shipments) for m in card.months] == [
        ("jnt", "2026-12", 5),
        ("posind", "2026-12", 1),
    ]


async def test_a_quarter_and_a_contract_term_go_month_by_month(
    card_ctx: AppContext, sessions: SessionFactory
) -> None:
    await _seed(card_ctx, sessions)
    caller = await contracts.local_caller(card_ctx, "BLT")
    quarter = await scorecards.scorecard(card_ctx, caller, period="2026Q4")
    jnt = quarter.couriers[0]
    assert (jnt.shipments, jnt.delivered, jnt.on_time, jnt.decided) == (6, 3, 2, 5)
    assert [(m.month, m.shipments) for m in quarter.months if m.courier_code == "jnt"] == [
        ("2026-11", 1),
        ("2026-12", 5),
    ]
    term = await scorecards.scorecard(card_ctx, caller, period="contract:JNT-2026")
    assert [c.courier_code for c in term.couriers] == ["jnt"]  # that contract's shipments only
    assert term.couriers[0].shipments == 6
    with pytest.raises(scorecards.ServiceError) as refused:
        await scorecards.scorecard(card_ctx, caller, period="2026-13")
    assert refused.value.details[0].path == "url.period"
