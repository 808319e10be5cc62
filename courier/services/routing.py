"""Routing a queued delivery to a contract (docs/design.md §2.3, docs/decisions.md §28).

Runs inside the booking's intent transaction (courier/services/booking.py), so the status it
reads is the status at that instant: a contract suspended or ended a moment earlier books
nothing more. The choice itself is courier/domain/routing.py.

An office served by no contract at all (none, or drafts only) keeps booking with its configured
courier (``offices.courier_code``), as before contracts existed, and the log says so once per
office and process (``routing.no_contracts``). Once any contract has been activated for an
office, only contracts route it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import WIB
from courier.context import AppContext
from courier.db.models import Contract, ContractOffice, Delivery, Office
from courier.domain import regions, routing
from courier.domain.contracts import ContractStatus, expected_cost
from courier.services import scorecards
from courier.services.booking import DEFAULT_DECLARED_VALUE, DEFAULT_WEIGHT_KG
from courier.services.contracts import office_codes, terms_of

log = structlog.get_logger()

RECENT_DAYS = 90  # "recent" on-time rate: shipments booked in the last 90 days

_warned: set[int] = set()  # offices whose no-contract fallback was logged by this process


@dataclass(frozen=True)
class Choice:
    """Where the delivery goes: a courier, and the contract it is booked under (None: the
    office's configured courier, no contract exists for the office)."""

    courier_code: str
    contract_id: int | None = None
    sla_days: int | None = None
    expected_cost: int | None = None


def parcel(ctx: AppContext, courier_code: str) -> routing.Parcel:
    settings = ctx.settings.couriers.get(courier_code, {})
    return routing.Parcel(
        weight_kg=Decimal(str(settings.get("weight_kg", DEFAULT_WEIGHT_KG))),
        declared_value=int(settings.get("declared_value", DEFAULT_DECLARED_VALUE)),
    )


def regency_label(code: str) -> str:
    found = regions.lookup_regency(code)
    return f"{found.name} ({code})" if found is not None else code


async def candidates(session: AsyncSession, office_id: int) -> list[routing.Candidate] | None:
    """The office's contracts that are not drafts; None when it has none at all."""
    rows = (
        await session.scalars(
            select(Contract)
            .join(ContractOffice, ContractOffice.contract_id == Contract.id)
            .where(
                ContractOffice.office_id == office_id,
                Contract.status != ContractStatus.DRAFT.value,
            )
        )
    ).all()
    if not rows:
        return None
    codes = await office_codes(session, [r.id for r in rows])
    return [routing.Candidate(r.id, r.status, terms_of(r, codes[r.id])) for r in rows]


async def route(
    ctx: AppContext, session: AsyncSession, office: Office, delivery: Delivery, now: datetime
) -> Choice | routing.NoRoute:
    """The contract (and courier) this delivery is booked under now, or why none may carry it."""
    found = await candidates(session, office.id)
    if found is None:
        if office.id not in _warned:
            _warned.add(office.id)
            log.warning("routing.no_contracts", office=office.code, courier=office.courier_code)
        return Choice(office.courier_code)
    today: date = now.astimezone(WIB).date()
    parcels = {code: parcel(ctx, code) for code in ctx.couriers}
    preference = [str(c) for c in (office.courier_preference or [])]
    regency = delivery.destination_regency_code
    tied = routing.tied_on_cost(
        found,
        office_code=office.code,
        regency=regency,
        today=today,
        preference=preference,
        parcels=parcels,
    )
    since = now - timedelta(days=RECENT_DAYS)
    on_time = await scorecards.recent_on_time(session, tied, since=since, now=now)
    chosen = routing.choose(
        found,
        office_code=office.code,
        regency=regency,
        today=today,
        preference=preference,
        parcels=parcels,
        on_time=on_time,
    )
    if chosen is None:
        return routing.NoRoute(regency, routing.no_route_reason(regency_label(regency)))
    return Choice(
        courier_code=chosen.courier_code,
        contract_id=chosen.contract_id,
        sla_days=chosen.zone.sla_days,
        expected_cost=expected_cost(chosen.zone, parcels[chosen.courier_code].weight_kg),
    )
