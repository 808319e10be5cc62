"""Routing by contract through the real booking loop and the real J&T and Pos Indonesia
simulators: expired, future, suspended, non-covering and overlapping contracts; the lapse
between two contracts (the delivery waits with a no_contract item, is not hot-looped, and books
by itself once a contract covers it); a contract that ends with shipments in flight; the
office's preferred order and the cheaper tariff."""

from __future__ import annotations

from datetime import timedelta

import contract_seed
import pytest
import worker_seed as seed
from booking_sims import Sim
from sqlalchemy import select

from core.clock import ManualClock
from courier.context import AppContext
from courier.db.engine import SessionFactory, transaction
from courier.db.models import AuditEntry, Delivery, ExceptionItem, Office, Shipment
from courier.domain.contracts import ContractStatus
from courier.domain.exception_kinds import NEXT_STEPS, ExceptionKind
from courier.services import contracts, watch
from courier.services.errors import ServiceError
from worker import book


async def _exceptions(sessions: SessionFactory) -> list[ExceptionItem]:
    async with sessions() as session:
        return list(await session.scalars(select(ExceptionItem)))


async def _drain(ctx: AppContext, worker_id: str) -> None:
    while await book.once(ctx, worker_id):
        pass


ITEM_TEXT = "no courier contract covers KOTA MALANG (35.73) today"


async def _delivery(sessions: SessionFactory, delivery_id: int) -> Delivery:
    async with sessions() as session:
        found = await session.get(Delivery, delivery_id)
        assert found is not None
        return found


async def _no_contract_items(sessions: SessionFactory) -> list[ExceptionItem]:
    return [i for i in await _exceptions(sessions) if i.kind == ExceptionKind.NO_CONTRACT.value]


async def test_the_lapse_between_two_contracts_waits_then_books_by_itself(
    ctx: AppContext, sessions: SessionFactory, clock: ManualClock, sims: dict[str, Sim]
) -> None:
    office = await seed.office(sessions, courier="posind")
    # Pos Indonesia's contract ended with October (expired); J&T's starts on 5 November (future);
    # a suspended one and one for another regency do not count either
    await contract_seed.contract(
        ctx,
        contract_seed.terms("POS-2025", "posind", valid_from="2025-11-01", valid_to="2026-10-31"),
    )
    await contract_seed.contract(
        ctx, contract_seed.terms("JNT-2026", valid_from="2026-11-05", valid_to="2027-11-04")
    )
    await contract_seed.contract(
        ctx,
        contract_seed.terms("POS-SUSP", "posind", valid_from="2026-11-01"),
        ContractStatus.SUSPENDED,
    )
    await contract_seed.contract(
        ctx,
        contract_seed.terms(
            "JNT-KAB", regencies=["35.07"], valid_from="2026-10-01", valid_to="2026-11-04"
        ),
    )
    [delivery_id] = await seed.deliveries(sessions, office, 1)

    assert await book.once(ctx, "w1") == 1
    assert await seed.shipments(sessions) == []
    waiting = await _delivery(sessions, delivery_id)
    assert waiting.state == "queued"
    assert waiting.next_attempt_at is not None and waiting.next_attempt_at > clock.now()
    assert waiting.state_reason is not None and ITEM_TEXT in waiting.state_reason
    assert waiting.state_reason.startswith("Tidak ada kontrak kurir")
    [item] = await _no_contract_items(sessions)
    assert ITEM_TEXT in item.detail and item.resolved_at is None
    assert item.next_step == NEXT_STEPS[ExceptionKind.NO_CONTRACT].id
    # not hot-looped: nothing is claimable until its backoff has passed
    assert await book.once(ctx, "w1") == 0
    clock.advance(timedelta(seconds=31))
    assert await book.once(ctx, "w1") == 1
    later = await _delivery(sessions, delivery_id)
    assert later.next_attempt_at is not None
    assert later.next_attempt_at - clock.now() > waiting.next_attempt_at - seed.T0  # it grows
    assert len(await _no_contract_items(sessions)) == 1  # still one item

    # 5 November, 08:00 WIB: J&T's contract is in force and covers the destination
    clock.set(seed.T0 + timedelta(days=3))
    await _drain(ctx, "w1")
    [shipment] = await seed.shipments(sessions)
    assert shipment.courier_code == "jnt" and shipment.status == "booked"
    async with sessions() as session:
        jnt_id = await session.scalar(
            select(Shipment.contract_id).where(Shipment.id == shipment.id)
        )
    caller = await contracts.local_caller(ctx, "BLT")
    numbers = {v.id: v.number for v in await contracts.list_contracts(ctx, caller)}
    assert numbers[jnt_id] == "JNT-2026"
    assert shipment.sla_days == 2 and shipment.cost == 9_000  # 0.2 kg: one started kilogram
    [item] = await _no_contract_items(sessions)
    assert item.resolved_at is not None  # cleared by itself
    assert (await sims["jnt"].orders())["calls"] == {"create": 1}
    assert (await sims["posind"].orders())["orders"] == []


async def test_a_suspended_contract_stops_new_bookings_and_its_shipments_continue(
    ctx: AppContext, sessions: SessionFactory, clock: ManualClock
) -> None:
    office = await seed.office(sessions)
    jnt = await contract_seed.contract(ctx, contract_seed.terms("JNT-2026"))
    [first] = await seed.deliveries(sessions, office, 1)
    await _drain(ctx, "w1")
    [in_flight] = await seed.shipments(sessions)
    assert in_flight.contract_id == jnt and in_flight.status == "booked"

    await contract_seed.move(ctx, jnt, ContractStatus.SUSPENDED)
    [second] = await seed.deliveries(sessions, office, 1, start=2)
    await _drain(ctx, "w1")
    assert [s.id for s in await seed.shipments(sessions)] == [in_flight.id]  # nothing new
    assert (await _delivery(sessions, second)).state == "queued"
    assert len(await _no_contract_items(sessions)) == 1
    # the shipment booked under it carries on, pinned to its contract
    assert (await _delivery(sessions, first)).state == "shipping"

    # activating again wakes the waiting delivery at once (no waiting out its backoff)
    await contract_seed.move(ctx, jnt, ContractStatus.ACTIVE)
    await _drain(ctx, "w1")
    assert (await _delivery(sessions, second)).state == "shipping"

    await contract_seed.move(ctx, jnt, ContractStatus.ENDED)
    [third] = await seed.deliveries(sessions, office, 1, start=3)
    await _drain(ctx, "w1")
    assert (await _delivery(sessions, third)).state == "queued"
    assert len(await seed.shipments(sessions)) == 2


async def test_preference_then_cost_choose_among_contracts_in_force(
    ctx: AppContext, sessions: SessionFactory
) -> None:
    office = await seed.office(sessions)
    await contract_seed.contract(ctx, contract_seed.terms("JNT-2026", tariff=12_000))
    pos = await contract_seed.contract(ctx, contract_seed.terms("POS-2026", "posind", tariff=8_000))
    await seed.deliveries(sessions, office, 1)
    await _drain(ctx, "w1")
    [cheapest] = await seed.shipments(sessions)
    assert cheapest.contract_id == pos and cheapest.courier_code == "posind"

    async with transaction(sessions) as session:
        row = await session.get(Office, office)
        assert row is not None
        row.courier_preference = ["jnt", "posind"]
    await seed.deliveries(sessions, office, 1, start=2)
    await _drain(ctx, "w1")
    preferred = [s for s in await seed.shipments(sessions) if s.id != cheapest.id]
    assert [s.courier_code for s in preferred] == ["jnt"]
    assert preferred[0].cost == 12_000


async def test_an_overlapping_contract_is_refused_naming_the_field(
    ctx: AppContext, sessions: SessionFactory
) -> None:
    await seed.office(sessions)
    await contract_seed.contract(ctx, contract_seed.terms("JNT-2026", regencies=["35.73", "35.07"]))
    second = await contract_seed.contract(
        ctx,
        contract_seed.terms(
            "JNT-2027", valid_from="2027-10-01", valid_to="2028-09-30", regencies=["35.73"]
        ),
        ContractStatus.DRAFT,
    )
    with pytest.raises(ServiceError) as refused:
        await contract_seed.move(ctx, second, ContractStatus.ACTIVE)
    assert refused.value.code == "contract_overlaps"
    [detail] = refused.value.details
    assert detail.path == "$.valid_from"
    assert "JNT-2026" in detail.message and "35.73" in detail.message
    # another courier, or a disjoint regency, does not collide
    other = await contract_seed.contract(
        ctx,
        contract_seed.terms("JNT-KOTA", valid_from="2027-10-01", regencies=["35.72"]),
        ContractStatus.DRAFT,
    )
    await contract_seed.move(ctx, other, ContractStatus.ACTIVE)


async def test_contradictory_terms_are_refused_and_an_active_contract_keeps_its_terms(
    ctx: AppContext, sessions: SessionFactory
) -> None:
    await seed.office(sessions)
    caller = await contracts.local_caller(ctx, "BLT")
    bad = contract_seed.terms("JNT-BAD", valid_from="2027-01-01", valid_to="2026-01-01")
    bad["zones"] = [{"name": "A", "regencies": ["35.73"], "sla_days": 2, "tariff_per_kg": 1}]
    bad["insurance_cover"] = 2_000_000
    with pytest.raises(ServiceError) as refused:
        await contracts.create(ctx, caller, bad)
    paths = {d.path for d in refused.value.details}
    assert paths == {"$.valid_to", "$.zones", "$.insurance_cover"}
    cid = await contract_seed.contract(ctx, contract_seed.terms("JNT-2026"))
    with pytest.raises(ServiceError) as frozen:
        await contracts.update_terms(ctx, caller, cid, contract_seed.terms("JNT-2026", tariff=1))
    assert frozen.value.code == "contract_not_draft"
    async with sessions() as session:
        actions = list(
            await session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.entity == "contract")
                .order_by(AuditEntry.id)
            )
        )
    assert actions == ["contract.created", "contract.active"]


async def test_an_office_without_contracts_keeps_its_configured_courier(
    ctx: AppContext, sessions: SessionFactory
) -> None:
    office = await seed.office(sessions, courier="posind")
    await contract_seed.contract(ctx, contract_seed.terms("JNT-DRAFT"), ContractStatus.DRAFT)
    await seed.deliveries(sessions, office, 1)
    await _drain(ctx, "w1")
    [shipment] = await seed.shipments(sessions)
    assert shipment.courier_code == "posind" and shipment.contract_id is None


async def test_a_waiting_delivery_settled_otherwise_closes_its_item(
    ctx: AppContext, sessions: SessionFactory
) -> None:
    office = await seed.office(sessions)
    await contract_seed.contract(ctx, contract_seed.terms("JNT-OLD", valid_to="2026-11-01"))
    first, second = await seed.deliveries(sessions, office, 2)
    await _drain(ctx, "w1")
    assert len(await _no_contract_items(sessions)) == 2
    # the applicant collects one at the counter; the other's delivery expires meanwhile
    async with transaction(sessions) as session:
        await watch.collected_at_counter(session, first, "staff:1", now=seed.T0, office_id=office)
        row = await session.get(Delivery, second)
        assert row is not None
        row.state = "expired"
    await watch.scan_all(sessions, now=seed.T0)
    assert all(i.resolved_at is not None for i in await _no_contract_items(sessions))
