"""Contract registry use cases (role ``contract_manager``, or ``admin``): create, change a
draft's terms, activate, suspend, end, list and show. Every change is audited.

A caller sees the contracts that serve its own office (invariant 5: another office's contract
answers 404 like one that does not exist) and may only write contracts that serve it. Terms are
checked by courier/domain/contracts.py: contradictory terms are refused naming the field, and a
contract may not become active while a live one of the same courier serves a same office for a
same regency over an overlapping period.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import structlog
from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from adapters import registry
from core.clock import WIB
from courier.context import AppContext
from courier.db.engine import transaction
from courier.db.models import Contract, ContractOffice, Delivery, ExceptionItem, Office
from courier.domain import contracts as terms_rules
from courier.domain import regions
from courier.domain.contracts import LIVE, ContractStatus, Terms, Zone
from courier.domain.exception_kinds import ExceptionKind
from courier.domain.states import DeliveryState
from courier.services import audit
from courier.services.errors import Kind, ServiceError, invalid, unique_race
from courier.services.staff import Caller
from schemas import FieldError

log = structlog.get_logger()


@dataclass(frozen=True)
class ContractView:
    id: int
    number: str
    courier_code: str
    parties: tuple[str, ...]
    office_codes: tuple[str, ...]
    valid_from: date
    valid_to: date
    all_regencies: bool
    regency_codes: tuple[str, ...]
    zones: tuple[Zone, ...]
    declared_value_cap: int
    insurance_cover: int
    penalty_late: int
    penalty_lost: int
    status: str
    status_reason: str | None
    in_force: bool  # active and today (WIB) within its period
    created_at: datetime
    updated_at: datetime


def _not_found() -> ServiceError:
    return ServiceError(Kind.NOT_FOUND, "unknown_contract", "no such contract")


def terms_of(row: Contract, office_codes: Sequence[str]) -> Terms:
    return Terms(
        number=row.number,
        courier_code=row.courier_code,
        parties=tuple(str(p) for p in row.parties),
        office_codes=frozenset(office_codes),
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        all_regencies=row.all_regencies,
        regency_codes=frozenset(str(c) for c in row.regency_codes),
        zones=terms_rules.zones_from_json(row.zones),
        declared_value_cap=row.declared_value_cap,
        insurance_cover=row.insurance_cover,
        penalty_late=row.penalty_late,
        penalty_lost=row.penalty_lost,
    )


def _view(row: Contract, office_codes: Sequence[str], today: date) -> ContractView:
    terms = terms_of(row, office_codes)
    return ContractView(
        id=row.id,
        number=row.number,
        courier_code=row.courier_code,
        parties=terms.parties,
        office_codes=tuple(sorted(office_codes)),
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        all_regencies=row.all_regencies,
        regency_codes=tuple(sorted(terms.regency_codes)),
        zones=terms.zones,
        declared_value_cap=row.declared_value_cap,
        insurance_cover=row.insurance_cover,
        penalty_late=row.penalty_late,
        penalty_lost=row.penalty_lost,
        status=row.status,
        status_reason=row.status_reason,
        in_force=terms_rules.in_force(row.status, terms, today),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _audit_terms(terms: Terms) -> dict[str, Any]:
    return {
        "number": terms.number,
        "courier": terms.courier_code,
        "parties": list(terms.parties),
        "offices": sorted(terms.office_codes),
        "valid_from": terms.valid_from.isoformat(),
        "valid_to": terms.valid_to.isoformat(),
        "regencies": "all" if terms.all_regencies else sorted(terms.regency_codes),
        "zones": terms_rules.zones_json(terms.zones),
        "declared_value_cap": terms.declared_value_cap,
        "insurance_cover": terms.insurance_cover,
        "penalty_late": terms.penalty_late,
        "penalty_lost": terms.penalty_lost,
    }


async def office_codes(session: AsyncSession, contract_ids: Sequence[int]) -> dict[int, list[str]]:
    """The codes of the offices each contract serves."""
    found: dict[int, list[str]] = {cid: [] for cid in contract_ids}
    if not contract_ids:
        return found
    rows = await session.execute(
        select(ContractOffice.contract_id, Office.code)
        .join(Office, Office.id == ContractOffice.office_id)
        .where(ContractOffice.contract_id.in_(contract_ids))
    )
    for contract_id, code in rows:
        found[int(contract_id)].append(str(code))
    return found


def _serves(caller: Caller) -> Any:
    return exists().where(
        ContractOffice.contract_id == Contract.id, ContractOffice.office_id == caller.office_id
    )


async def _load(session: AsyncSession, caller: Caller, contract_id: int) -> Contract:
    row = await session.scalar(
        select(Contract).where(Contract.id == contract_id, _serves(caller)).with_for_update()
    )
    if row is None:
        raise _not_found()
    return row


def _checked(data: Mapping[str, Any]) -> Terms:
    """Terms from a schema-checked body; contradictions refused naming the field."""
    try:
        terms = terms_rules.terms_from_json(data)
    except ValueError as err:  # a date the pattern let through (2026-02-30)
        raise invalid([FieldError("$.valid_from", f"not a date: {err}")]) from None
    errors = terms_rules.contradictions(
        terms,
        couriers=registry.DESCRIPTORS,
        is_regency=lambda code: regions.lookup_regency(code) is not None,
    )
    if errors:
        raise invalid(errors, "the contract's terms contradict each other")
    return terms


async def _office_ids(session: AsyncSession, caller: Caller, terms: Terms) -> list[int]:
    rows = (
        await session.execute(
            select(Office.id, Office.code).where(Office.code.in_(terms.office_codes))
        )
    ).all()
    known = {str(code): int(oid) for oid, code in rows}
    errors = [
        FieldError("$.offices", f"{code} is not an office")
        for code in sorted(terms.office_codes - set(known))
    ]
    if caller.office_id not in known.values():
        errors.append(FieldError("$.offices", "must include the caller's own office"))
    if errors:
        raise invalid(errors)
    return sorted(known.values())


def _write_terms(row: Contract, terms: Terms) -> None:
    row.number = terms.number
    row.courier_code = terms.courier_code
    row.parties = list(terms.parties)
    row.valid_from = terms.valid_from
    row.valid_to = terms.valid_to
    row.all_regencies = terms.all_regencies
    row.regency_codes = sorted(terms.regency_codes)
    row.zones = terms_rules.zones_json(terms.zones)
    row.declared_value_cap = terms.declared_value_cap
    row.insurance_cover = terms.insurance_cover
    row.penalty_late = terms.penalty_late
    row.penalty_lost = terms.penalty_lost


_TAKEN = "another contract has this number"


async def create(ctx: AppContext, caller: Caller, data: Mapping[str, Any]) -> ContractView:
    """A new contract, as a draft."""
    terms = _checked(data)
    now = ctx.clock.now()
    async with (
        unique_race("contract_number_taken", _TAKEN, "$.number"),
        transaction(ctx.sessions) as session,
    ):
        office_ids = await _office_ids(session, caller, terms)
        if await session.scalar(select(Contract.id).where(Contract.number == terms.number)):
            raise ServiceError(
                Kind.CONFLICT,
                "contract_number_taken",
                _TAKEN,
                [FieldError("$.number", _TAKEN)],
            )
        row = Contract(
            status=ContractStatus.DRAFT.value,
            created_by=caller.actor,
            created_at=now,
            updated_at=now,
        )
        _write_terms(row, terms)
        session.add(row)
        await session.flush()
        session.add_all(ContractOffice(contract_id=row.id, office_id=o) for o in office_ids)
        audit.record(
            session,
            at=now,
            actor=caller.actor,
            action="contract.created",
            entity="contract",
            entity_id=row.id,
            office_id=caller.office_id,
            after={"status": row.status, **_audit_terms(terms)},
        )
        return _view(row, sorted(terms.office_codes), ctx.clock.now().astimezone(WIB).date())


async def update_terms(
    ctx: AppContext, caller: Caller, contract_id: int, data: Mapping[str, Any]
) -> ContractView:
    """New terms for a draft; an active, suspended or ended contract's terms are what was
    signed and never change (409 ``contract_not_draft``)."""
    terms = _checked(data)
    now = ctx.clock.now()
    async with (
        unique_race("contract_number_taken", _TAKEN, "$.number"),
        transaction(ctx.sessions) as session,
    ):
        row = await _load(session, caller, contract_id)
        if row.status != ContractStatus.DRAFT.value:
            raise ServiceError(
                Kind.CONFLICT,
                "contract_not_draft",
                f"a {row.status} contract's terms cannot change",
            )
        office_ids = await _office_ids(session, caller, terms)
        before = _audit_terms(terms_of(row, (await office_codes(session, [row.id]))[row.id]))
        taken = await session.scalar(
            select(Contract.id).where(Contract.number == terms.number, Contract.id != row.id)
        )
        if taken:
            raise ServiceError(
                Kind.CONFLICT, "contract_number_taken", _TAKEN, [FieldError("$.number", _TAKEN)]
            )
        _write_terms(row, terms)
        row.updated_at = now
        await session.execute(delete(ContractOffice).where(ContractOffice.contract_id == row.id))
        session.add_all(ContractOffice(contract_id=row.id, office_id=o) for o in office_ids)
        audit.record(
            session,
            at=now,
            actor=caller.actor,
            action="contract.terms_changed",
            entity="contract",
            entity_id=row.id,
            office_id=caller.office_id,
            before=before,
            after=_audit_terms(terms),
        )
        return _view(row, sorted(terms.office_codes), ctx.clock.now().astimezone(WIB).date())


async def _live_others(session: AsyncSession, row: Contract) -> list[Terms]:
    others = (
        await session.scalars(
            select(Contract).where(
                Contract.courier_code == row.courier_code,
                Contract.id != row.id,
                Contract.status.in_([s.value for s in LIVE]),
            )
        )
    ).all()
    codes = await office_codes(session, [o.id for o in others])
    return [terms_of(o, codes[o.id]) for o in others]


async def _wake_waiting(session: AsyncSession, office_ids: Sequence[int], now: datetime) -> int:
    """Deliveries of these offices waiting for a contract are tried at once, not at the end
    of their backoff: the new contract may cover them."""
    waiting = exists().where(
        ExceptionItem.delivery_id == Delivery.id,
        ExceptionItem.kind == ExceptionKind.NO_CONTRACT.value,
        ExceptionItem.resolved_at.is_(None),
    )
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.office_id.in_(office_ids),
            Delivery.state == DeliveryState.QUEUED.value,
            Delivery.next_attempt_at > now,
            waiting,
        )
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def set_status(
    ctx: AppContext,
    caller: Caller,
    contract_id: int,
    target: ContractStatus,
    reason: str | None = None,
) -> ContractView:
    """Activate, suspend or end. Suspending or ending stops new bookings at once (routing reads
    the status in the booking's own transaction); shipments already under it carry on."""
    now = ctx.clock.now()
    async with transaction(ctx.sessions) as session:
        row = await _load(session, caller, contract_id)
        refused = terms_rules.check_move(row.status, target)
        if refused is not None:
            raise ServiceError(Kind.CONFLICT, "contract_status", refused)
        codes = (await office_codes(session, [row.id]))[row.id]
        if target is ContractStatus.ACTIVE:
            terms = terms_of(row, codes)
            clashes = terms_rules.collisions(terms, await _live_others(session, row))
            if clashes:
                raise ServiceError(
                    Kind.CONFLICT,
                    "contract_overlaps",
                    "another live contract of this courier covers the same ground",
                    clashes,
                )
        before = row.status
        row.status = target.value
        row.status_reason = reason
        row.updated_at = now
        woken = 0
        if target is ContractStatus.ACTIVE:
            office_ids = (
                await session.scalars(
                    select(ContractOffice.office_id).where(ContractOffice.contract_id == row.id)
                )
            ).all()
            woken = await _wake_waiting(session, list(office_ids), now)
        audit.record(
            session,
            at=now,
            actor=caller.actor,
            action=f"contract.{target.value}",
            entity="contract",
            entity_id=row.id,
            office_id=caller.office_id,
            before={"status": before},
            after={"status": row.status, "woken_deliveries": woken},
            reason=reason,
        )
        view = _view(row, codes, ctx.clock.now().astimezone(WIB).date())
    log.info("contract.status", contract_id=contract_id, status=target.value, woken=woken)
    return view


async def list_contracts(
    ctx: AppContext, caller: Caller, *, status: str | None = None
) -> list[ContractView]:
    """The contracts serving the caller's office, newest period first."""
    async with ctx.sessions() as session:
        query = select(Contract).where(_serves(caller))
        if status is not None:
            query = query.where(Contract.status == status)
        rows = (
            await session.scalars(query.order_by(Contract.valid_from.desc(), Contract.id.desc()))
        ).all()
        codes = await office_codes(session, [r.id for r in rows])
        today = ctx.clock.now().astimezone(WIB).date()
        return [_view(r, codes[r.id], today) for r in rows]


async def contract(ctx: AppContext, caller: Caller, contract_id: int) -> ContractView:
    async with ctx.sessions() as session:
        row = await session.scalar(
            select(Contract).where(Contract.id == contract_id, _serves(caller))
        )
        if row is None:
            raise _not_found()
        codes = await office_codes(session, [row.id])
        return _view(row, codes[row.id], ctx.clock.now().astimezone(WIB).date())


async def contract_by_number(ctx: AppContext, caller: Caller, number: str) -> ContractView:
    """For the command line, which names contracts by number."""
    async with ctx.sessions() as session:
        contract_id = await session.scalar(
            select(Contract.id).where(Contract.number == number, _serves(caller))
        )
    if contract_id is None:
        raise _not_found()
    return await contract(ctx, caller, int(contract_id))


async def local_caller(ctx: AppContext, office_code: str, actor: str = "cli") -> Caller:
    """An administrator of ``office_code`` for the command line (whoever runs it holds the
    database's credentials)."""
    async with ctx.sessions() as session:
        office_id = await session.scalar(select(Office.id).where(Office.code == office_code))
    if office_id is None:
        raise invalid([FieldError("$.office", "no such office")])
    from courier.services.staff import Caller

    return Caller(office_id=int(office_id), actor=actor, role="admin", token_id=0)
